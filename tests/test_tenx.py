"""Reading Cell Ranger ARC's output (``read_10x_multiome``): files written in 10x's documented
layout are read exactly, the bundled cell lines round-trip through both forms, and bad files
are clear errors."""

import builtins
import gzip

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from benchmarks.harness.tenx_files import features_frame, write_10x_folder, write_10x_h5, write_gtf
from factvae_sk.datasets import read_10x_multiome
from factvae_sk.exceptions import FactVAEWarning, InputFileError


def _write(form, tmp_path, rna, atac, features, barcodes):
    """The matrix in one of the two forms; returns the path to read."""
    if form == "h5":
        pytest.importorskip("h5py")
        path = tmp_path / "filtered_feature_bc_matrix.h5"
        write_10x_h5(path, rna, atac, features, barcodes)
        return path
    path = tmp_path / "filtered_feature_bc_matrix"
    write_10x_folder(path, rna, atac, features, barcodes)
    return path


@pytest.fixture
def tiny():
    """3 cells; genes A, B, A (a repeated symbol), C without coordinates; two peaks."""
    rna = sp.csr_matrix(np.array([[1, 0, 2, 0], [0, 3, 0, 1], [4, 0, 0, 5]]))
    atac = sp.csr_matrix(np.array([[0, 2], [1, 0], [6, 1]]))
    genes = pd.DataFrame(
        {
            "gene": ["A", "B", "A", "C"],
            "chrom": ["chr1", "chr2", "chr1", np.nan],
            "start": [100, 500, 900, np.nan],
            "end": [200, 800, 1000, np.nan],
        }
    )
    peaks = pd.DataFrame({"chrom": ["chr1", "chrX"], "start": [50, 7], "end": [150, 70]})
    return rna, atac, genes, peaks, ["AAAC-1", "AAAG-1", "TTTC-1"]


@pytest.mark.parametrize("form", ["h5", "folder"])
def test_a_small_file_is_read_exactly(tmp_path, tiny, form):
    rna, atac, genes, peaks, barcodes = tiny
    features = features_frame(genes, peaks, gene_ids=["G1", "G2", "G3", "G4"])
    path = _write(form, tmp_path, rna, atac, features, barcodes)
    with pytest.warns(FactVAEWarning, match="1 gene symbol.*repeat.*A-1"):
        data = read_10x_multiome(path)
    assert data.rna.format == "csr" and data.rna.dtype == np.float32
    np.testing.assert_array_equal(data.rna.toarray(), rna.toarray())
    np.testing.assert_array_equal(data.atac.toarray(), atac.toarray())
    assert data.genes["gene"].tolist() == ["A", "B", "A-1", "C"]
    assert data.genes["gene_id"].tolist() == ["G1", "G2", "G3", "G4"]
    assert data.genes["chrom"].tolist()[:3] == ["chr1", "chr2", "chr1"]
    assert pd.isna(data.genes["chrom"].iloc[3])
    np.testing.assert_array_equal(data.genes["start"], [100, 500, 900, np.nan])
    np.testing.assert_array_equal(data.genes["end"], [200, 800, 1000, np.nan])
    assert (data.genes["strand"] == ".").all()  # 10x's files carry no strand
    assert data.peaks["peak"].tolist() == ["chr1:50-150", "chrX:7-70"]
    assert data.peaks["chrom"].tolist() == ["chr1", "chrX"]
    np.testing.assert_array_equal(data.peaks["start"], [50, 7])
    np.testing.assert_array_equal(data.peaks["end"], [150, 70])
    assert data.cells["barcode"].tolist() == barcodes
    assert data.located


@pytest.mark.parametrize("form", ["h5", "folder"])
def test_gtf_gives_strands_and_missing_coordinates(tmp_path, tiny, form):
    rna, atac, genes, peaks, barcodes = tiny
    ids = ["ENSG1", "ENSG2", "ENSG3", "ENSG4"]
    path = _write(form, tmp_path, rna, atac, features_frame(genes, peaks, ids), barcodes)
    # The GTF places C (which the file does not) and gives every gene a strand; ids carry a
    # version suffix there, as in GENCODE. The second A is matched by its id, not its name.
    annotation = pd.DataFrame(
        {
            "gene": ["A", "B", "A", "C"],
            "chrom": ["chr1", "chr2", "chr1", "chr3"],
            "start": [100, 500, 900, 40],
            "end": [200, 800, 1000, 90],
            "strand": ["+", "-", "-", "+"],
        }
    )
    write_gtf(tmp_path / "genes.gtf.gz", annotation, ids)
    with pytest.warns(FactVAEWarning, match="repeat"):
        data = read_10x_multiome(path, gtf=tmp_path / "genes.gtf.gz")
    assert data.genes["strand"].tolist() == ["+", "-", "-", "+"]
    assert data.genes["chrom"].tolist() == ["chr1", "chr2", "chr1", "chr3"]
    np.testing.assert_array_equal(data.genes["start"], [100, 500, 900, 40])
    np.testing.assert_array_equal(data.genes["end"], [200, 800, 1000, 90])


@pytest.fixture(scope="module")
def cell_lines(snare):
    """Every gene and peak of 120 of the bundled cells, as user counts."""
    cells = np.arange(0, 1047, 9)[:120]
    genes = snare.genes.drop(columns="highly_variable")
    return snare.rna[cells], snare.atac[cells], genes, snare.peaks, snare.cells.iloc[cells]


@pytest.mark.parametrize("form", ["h5", "folder"])
def test_the_cell_lines_round_trip(tmp_path, cell_lines, form):
    rna, atac, genes, peaks, cells = cell_lines
    features = features_frame(genes, peaks)
    path = _write(form, tmp_path, rna, atac, features, cells["barcode"])
    write_gtf(tmp_path / "genes.gtf.gz", genes)
    # Names are unique; the genes without coordinates are the ones the GTF lacks.
    unplaced = int(genes["start"].isna().sum())
    with pytest.warns(FactVAEWarning, match=f"^{unplaced} of {len(genes)} genes") as caught:
        data = read_10x_multiome(path, gtf=tmp_path / "genes.gtf.gz")
    # ... and, from the readers' common table checks, that they will get no link.
    assert len(caught) == 2 and "have no coordinates" in str(caught[1].message)
    assert (data.rna != rna).nnz == 0 and (data.atac != atac).nnz == 0
    assert data.cells["barcode"].tolist() == cells["barcode"].tolist()
    columns = ["gene", "chrom", "start", "end", "strand"]
    pd.testing.assert_frame_equal(
        data.genes[columns].astype({"start": float, "end": float}),
        genes[columns].fillna({"strand": "."}).astype({"start": float, "end": float}),
    )
    pd.testing.assert_frame_equal(
        data.peaks.astype({"start": np.int64, "end": np.int64}), peaks.reset_index(drop=True)
    )


def test_the_outs_folder_and_uncompressed_files_work(tmp_path, tiny):
    rna, atac, genes, peaks, barcodes = tiny
    folder = tmp_path / "outs" / "filtered_feature_bc_matrix"
    write_10x_folder(folder, rna, atac, features_frame(genes, peaks), barcodes)
    with pytest.warns(FactVAEWarning, match="repeat"):
        from_outs = read_10x_multiome(tmp_path / "outs")
    np.testing.assert_array_equal(from_outs.atac.toarray(), atac.toarray())
    for name in ("matrix.mtx", "features.tsv", "barcodes.tsv"):
        with gzip.open(folder / f"{name}.gz", "rb") as handle:
            (folder / name).write_bytes(handle.read())
        (folder / f"{name}.gz").unlink()
    with pytest.warns(FactVAEWarning, match="repeat"):
        plain = read_10x_multiome(folder)
    np.testing.assert_array_equal(plain.rna.toarray(), rna.toarray())


def test_other_feature_types_are_left_out_with_a_warning(tmp_path, tiny):
    rna, atac, genes, peaks, barcodes = tiny
    features = features_frame(genes.iloc[:2], peaks)
    antibody = pd.DataFrame({"id": ["CD3"], "name": ["CD3"], "feature_type": ["Antibody Capture"]})
    features = pd.concat([features, antibody], ignore_index=True)
    counts = sp.hstack([atac, sp.csr_matrix(np.array([[9], [8], [7]]))]).tocsr()
    path = _write("folder", tmp_path, rna[:, :2], counts, features, barcodes)
    with pytest.warns(FactVAEWarning, match="Antibody Capture.*left out"):
        data = read_10x_multiome(path)
    assert data.atac.shape == (3, 2) and data.peaks["peak"].tolist() == ["chr1:50-150", "chrX:7-70"]
    np.testing.assert_array_equal(data.atac.toarray(), atac.toarray())


def test_barcodes_without_counts_in_a_modality_are_left_out(tmp_path, tiny):
    rna, atac, genes, peaks, barcodes = tiny
    rna = sp.vstack([rna, sp.csr_matrix((1, 4))]).tocsr()  # no RNA
    atac = sp.vstack([atac, sp.csr_matrix([[2, 0]])]).tocsr()
    rna = sp.vstack([rna, sp.csr_matrix([[0, 1, 0, 0]])]).tocsr()
    atac = sp.vstack([atac, sp.csr_matrix((1, 2))]).tocsr()  # no ATAC
    barcodes = [*barcodes, "NORNA-1", "NOATAC-1"]
    path = _write("folder", tmp_path, rna, atac, features_frame(genes, peaks), barcodes)
    with pytest.warns(FactVAEWarning) as caught:
        data = read_10x_multiome(path)
    messages = [str(w.message) for w in caught]
    assert any(
        "2 of 5 barcodes are left out: 1 have no Gene Expression counts, 1 no Peaks" in m
        for m in messages
    )
    assert data.cells["barcode"].tolist() == barcodes[:3]
    np.testing.assert_array_equal(data.rna.toarray(), rna[:3].toarray())
    np.testing.assert_array_equal(data.atac.toarray(), atac[:3].toarray())


@pytest.mark.parametrize("form", ["h5", "folder"])
def test_a_gene_expression_only_matrix_is_a_clear_error(tmp_path, tiny, form):
    rna, atac, genes, peaks, barcodes = tiny
    features = features_frame(genes, peaks.iloc[:0])
    path = _write(form, tmp_path, rna, sp.csr_matrix((3, 0)), features, barcodes)
    with pytest.raises(InputFileError, match="no 'Peaks' features.*paired RNA and ATAC"):
        read_10x_multiome(path)


def test_bad_files_are_clear_errors(tmp_path, tiny, monkeypatch):
    rna, atac, genes, peaks, barcodes = tiny
    text = tmp_path / "matrix.h5"
    text.write_text("not hdf5\n")
    with pytest.raises(InputFileError, match="not an HDF5 file"):
        read_10x_multiome(text)
    with pytest.raises(InputFileError, match="no such file"):
        read_10x_multiome(tmp_path / "missing.h5")
    folder = tmp_path / "folder"
    write_10x_folder(folder, rna, atac, features_frame(genes, peaks), barcodes)
    (folder / "barcodes.tsv.gz").unlink()
    with pytest.raises(InputFileError, match="lacks barcodes.tsv.gz"):
        read_10x_multiome(folder)
    write_10x_folder(folder, rna, atac, features_frame(genes, peaks), barcodes[:2])
    with pytest.raises(InputFileError, match="6 features and 2 barcodes"):
        read_10x_multiome(folder)
    write_10x_gtf = tmp_path / "other.gtf.gz"
    write_gtf(write_10x_gtf, genes.iloc[:2].assign(gene=["X", "Y"], strand="+"), ["E1", "E2"])
    write_10x_folder(folder, rna, atac, features_frame(genes, peaks), barcodes)
    with pytest.warns(FactVAEWarning), pytest.raises(InputFileError, match="none of the 4 genes"):
        read_10x_multiome(folder, gtf=write_10x_gtf)
    # Without h5py, the error names the extra that installs it.
    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("No module named 'h5py'")
        return real_import(name, *args, **kwargs)

    (tmp_path / "fake.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(InputFileError, match=r"needs h5py: pip install 'factvae_sk\[tenx\]'"):
        read_10x_multiome(tmp_path / "fake.h5")


@pytest.mark.parametrize("form", ["h5", "folder"])
def test_a_cell_table_is_joined_by_barcode(tmp_path, tiny, form):
    rna, atac, genes, peaks, barcodes = tiny
    path = _write(form, tmp_path, rna, atac, features_frame(genes, peaks), barcodes)
    # Another tool's annotation, in its own order: two of the three cells and one the
    # counts lack; a column named like the reader's is kept from the reader.
    table = pd.DataFrame(
        {"barcode": ["TTTC-1", "GGGG-1", "AAAC-1"], "cell_type": ["T", "B", "NK"], "n": [3, 2, 1]}
    )
    table.to_csv(tmp_path / "annotation.csv", index=False)
    with pytest.warns(FactVAEWarning) as caught:
        data = read_10x_multiome(path, cells=tmp_path / "annotation.csv")
    said = " ".join(str(w.message) for w in caught)
    assert "2 cells are annotated and kept; 1 of the counts' barcodes" in said
    assert "1 of the table's are not among the counts" in said
    # The counts' order, only the annotated cells, their rows of the counts.
    assert data.cells["barcode"].tolist() == ["AAAC-1", "TTTC-1"]
    assert data.cells["cell_type"].tolist() == ["NK", "T"]
    assert data.cells["n"].tolist() == [1, 3]
    np.testing.assert_array_equal(data.rna.toarray(), rna.toarray()[[0, 2]])
    np.testing.assert_array_equal(data.atac.toarray(), atac.toarray()[[0, 2]])


def test_a_cell_table_that_matches_nothing_or_repeats_is_a_clear_error(tmp_path, tiny):
    rna, atac, genes, peaks, barcodes = tiny
    path = _write("folder", tmp_path, rna, atac, features_frame(genes, peaks), barcodes)
    other = tmp_path / "other.tsv"
    pd.DataFrame({"barcode": ["sample1_AAAC", "sample1_TTTC"]}).to_csv(other, sep="\t", index=False)
    with pytest.warns(FactVAEWarning), pytest.raises(InputFileError) as error:
        read_10x_multiome(path, cells=other)
    message = str(error.value)
    assert "none of the cell table's 2 barcodes" in message
    assert "sample1_AAAC" in message and "AAAC-1" in message
    twice = tmp_path / "twice.tsv"
    pd.DataFrame({"barcode": ["AAAC-1", "AAAC-1"]}).to_csv(twice, sep="\t", index=False)
    with pytest.warns(FactVAEWarning), pytest.raises(InputFileError, match="1 duplicated barcode"):
        read_10x_multiome(path, cells=twice)
