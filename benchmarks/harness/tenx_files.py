"""Paired counts written as Cell Ranger ARC writes them (10x's documented layout), for tests
and benchmarks: ``filtered_feature_bc_matrix.h5`` with h5py, and the
``filtered_feature_bc_matrix/`` folder with scipy's Matrix Market writer and gzip."""

import gzip
import io

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

__all__ = ["features_frame", "write_gtf", "write_10x_folder", "write_10x_h5"]


def _interval(chrom, start, end):
    """``chr:start-end``, or ``NA`` where the feature has no coordinates (as ARC writes)."""
    if pd.isna(chrom) or pd.isna(start):
        return "NA"
    return f"{chrom}:{int(start)}-{int(end)}"


def features_frame(genes, peaks, gene_ids=None):
    """The feature rows of a 10x Multiome matrix: genes first, then peaks."""
    gene_ids = [f"ENSG{i:011d}" for i in range(len(genes))] if gene_ids is None else gene_ids
    gene_rows = pd.DataFrame(
        {
            "id": list(gene_ids),
            "name": genes["gene"].tolist(),
            "feature_type": "Gene Expression",
            "chrom": genes["chrom"].tolist(),
            "start": genes["start"].tolist(),
            "end": genes["end"].tolist(),
        }
    )
    names = [_interval(*row) for row in peaks[["chrom", "start", "end"]].itertuples(index=False)]
    peak_rows = pd.DataFrame(
        {
            "id": names,
            "name": names,
            "feature_type": "Peaks",
            "chrom": peaks["chrom"].tolist(),
            "start": peaks["start"].tolist(),
            "end": peaks["end"].tolist(),
        }
    )
    return pd.concat([gene_rows, peak_rows], ignore_index=True)


def _features_x_barcodes(rna, atac):
    return sp.csc_matrix(sp.hstack([rna, atac]).T).astype(np.int64)


def write_10x_h5(path, rna, atac, features, barcodes):
    """``filtered_feature_bc_matrix.h5``: group ``matrix`` with data, indices, indptr, shape
    (features x barcodes, CSC), barcodes and ``features/`` (id, name, feature_type, genome,
    interval, _all_tag_keys), strings as fixed-length bytes."""
    import h5py

    matrix = _features_x_barcodes(rna, atac)
    intervals = [_interval(*row) for row in features[["chrom", "start", "end"]].itertuples(False)]

    def strings(values):
        return np.array([str(v).encode() for v in values])

    with h5py.File(path, "w") as h5:
        group = h5.create_group("matrix")
        group.create_dataset("data", data=matrix.data.astype(np.int32))
        group.create_dataset("indices", data=matrix.indices.astype(np.int64))
        group.create_dataset("indptr", data=matrix.indptr.astype(np.int64))
        group.create_dataset("shape", data=np.array(matrix.shape, dtype=np.int32))
        group.create_dataset("barcodes", data=strings(barcodes))
        found = group.create_group("features")
        for key in ("id", "name", "feature_type"):
            found.create_dataset(key, data=strings(features[key]))
        found.create_dataset("genome", data=strings(["GRCh38"] * len(features)))
        found.create_dataset("interval", data=strings(intervals))
        found.create_dataset("_all_tag_keys", data=strings(["genome", "interval"]))


def _gzip(path, text):
    with gzip.open(path, "wt") as handle:
        handle.write(text)


def write_10x_folder(folder, rna, atac, features, barcodes):
    """``filtered_feature_bc_matrix/``: matrix.mtx.gz (features x barcodes), features.tsv.gz
    (id, name, feature type, chrom, start, end; no header) and barcodes.tsv.gz."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    scipy.io.mmwrite(buffer, sp.coo_matrix(_features_x_barcodes(rna, atac)), field="integer")
    with gzip.open(folder / "matrix.mtx.gz", "wb") as handle:
        handle.write(buffer.getvalue())
    table = features.copy()
    for column in ("start", "end"):
        table[column] = [("" if pd.isna(v) else str(int(v))) for v in table[column]]
    table["chrom"] = table["chrom"].fillna("")
    _gzip(folder / "features.tsv.gz", table.to_csv(sep="\t", header=False, index=False))
    _gzip(folder / "barcodes.tsv.gz", "".join(f"{b}\n" for b in barcodes))


def write_gtf(path, genes, gene_ids=None):
    """A GTF with one ``gene`` record (1-based, closed) per gene that has coordinates."""
    gene_ids = [f"ENSG{i:011d}" for i in range(len(genes))] if gene_ids is None else gene_ids
    lines = [
        f"{g.chrom}\tHAVANA\tgene\t{int(g.start) + 1}\t{int(g.end)}\t.\t{g.strand}\t.\t"
        f'gene_id "{gene_id}.1"; gene_name "{g.gene}";'
        for g, gene_id in zip(genes.itertuples(), gene_ids, strict=True)
        if not pd.isna(g.start)
    ]
    with gzip.open(path, "wt") as handle:
        handle.write("#!genome-build GRCh38\n" + "\n".join(lines) + "\n")
