"""Tests of the GTF gene reader, on tiny GTF files written here (plain and gzip)."""

# ruff: noqa: E501 (GTF lines are long)

import gzip

import numpy as np
import pandas as pd
import pytest

from factvae_sk import build_gene_peak_prior, load_snare_cellline, read_gtf_genes

# GENCODE-style records (gene_type), an Ensembl-style one (gene_biotype, no gene_name), and
# transcript/exon lines of the same genes that must be skipped.
TINY_GTF = """##description: tiny test annotation
##provider: GENCODE
#!genome-build GRCh38
chr1\tHAVANA\tgene\t11869\t14409\t.\t+\t.\tgene_id "ENSG00000290825.1"; gene_type "lncRNA"; gene_name "DDX11L2"; level 2;
chr1\tHAVANA\ttranscript\t11869\t14409\t.\t+\t.\tgene_id "ENSG00000290825.1"; transcript_id "ENST00000456328.2"; gene_type "lncRNA"; gene_name "DDX11L2";
chr1\tHAVANA\texon\t11869\t12227\t.\t+\t.\tgene_id "ENSG00000290825.1"; transcript_id "ENST00000456328.2"; gene_type "lncRNA"; gene_name "DDX11L2"; exon_number 1;
chr1\tHAVANA\tgene\t65419\t71585\t.\t+\t.\tgene_id "ENSG00000186092.7"; gene_type "protein_coding"; gene_name "OR4F5"; level 2;
chr17\tHAVANA\tgene\t7661779\t7687538\t.\t-\t.\tgene_id "ENSG00000141510.18"; gene_type "protein_coding"; gene_name "TP53"; level 2;
chrX\tHAVANA\tgene\t276322\t303356\t.\t+\t.\tgene_id "ENSG00000182378.15"; gene_type "protein_coding"; gene_name "PLCXD1"; level 2;
chrY\tHAVANA\tgene\t276322\t303356\t.\t+\t.\tgene_id "ENSG00000182378.15_PAR_Y"; gene_type "protein_coding"; gene_name "PLCXD1"; level 2;
5\tensembl\tgene\t100\t100\t.\t-\t.\tgene_id "ENSG00000999999"; gene_version "1"; gene_biotype "snRNA";
"""


@pytest.fixture(params=["plain", "gzip"])
def gtf_path(request, tmp_path):
    if request.param == "plain":
        path = tmp_path / "tiny.gtf"
        path.write_text(TINY_GTF)
    else:
        path = tmp_path / "tiny.gtf.gz"
        with gzip.open(path, "wt") as handle:
            handle.write(TINY_GTF)
    return path


def test_reads_gene_records(gtf_path):
    genes = read_gtf_genes(gtf_path)
    assert list(genes.columns) == [
        "gene",
        "gene_id",
        "chrom",
        "start",
        "end",
        "strand",
        "gene_type",
    ]
    assert genes["gene"].tolist() == [
        "DDX11L2",
        "OR4F5",
        "TP53",
        "PLCXD1",
        "PLCXD1",
        "ENSG00000999999",
    ]
    assert genes["chrom"].tolist() == ["chr1", "chr1", "chr17", "chrX", "chrY", "5"]
    # 1-based closed -> 0-based half-open: the start moves by one, the end stays.
    assert genes["start"].tolist() == [11868, 65418, 7661778, 276321, 276321, 99]
    assert genes["end"].tolist() == [14409, 71585, 7687538, 303356, 303356, 100]
    assert genes["strand"].tolist() == ["+", "+", "-", "+", "+", "-"]
    assert genes["gene_type"].tolist()[-1] == "snRNA"  # Ensembl's gene_biotype
    assert genes["gene_id"].iloc[4] == "ENSG00000182378.15_PAR_Y"
    assert genes["start"].dtype == np.int64 and genes["end"].dtype == np.int64
    assert (genes["end"] - genes["start"]).tolist() == [2541, 6167, 25760, 27035, 27035, 1]


def test_gene_type_filter(gtf_path):
    genes = read_gtf_genes(gtf_path, gene_types=["protein_coding"])
    assert genes["gene"].tolist() == ["OR4F5", "TP53", "PLCXD1", "PLCXD1"]
    assert genes.index.tolist() == [0, 1, 2, 3]


def test_small_chunks_give_the_same_table(gtf_path):
    pd.testing.assert_frame_equal(read_gtf_genes(gtf_path, chunksize=2), read_gtf_genes(gtf_path))


def test_feeds_the_prior(gtf_path):
    genes = read_gtf_genes(gtf_path)
    # TP53 on '-': TSS is its last base 7687537; the 2 kb promoter lies to the right.
    peaks = ["chr17:7687600-7687700", "chr17:7661000-7661700", "chr1:11000-11900"]
    prior = build_gene_peak_prior(genes, peaks).toarray()
    np.testing.assert_array_equal(prior[2], [1, 0, 0])
    np.testing.assert_array_equal(prior[0], [0, 0, 1])


def test_no_gene_records(tmp_path):
    path = tmp_path / "exons.gtf"
    path.write_text(TINY_GTF.splitlines()[5] + "\n")  # one exon line
    with pytest.raises(ValueError, match="no 'gene' records"):
        read_gtf_genes(path)


def test_roundtrip_of_the_bundled_coordinates(tmp_path):
    # The bundled gene table written as a GTF (1-based closed) reads back to the same
    # 0-based half-open coordinates, and so gives the same prior.
    data = load_snare_cellline()
    genes = data.genes.dropna(subset=["start"]).iloc[::7].reset_index(drop=True)
    lines = [
        f"{g.chrom}\tsrc\tgene\t{int(g.start) + 1}\t{int(g.end)}\t.\t{g.strand}\t.\t"
        f'gene_id "G{i}"; gene_name "{g.gene}";'
        for i, g in enumerate(genes.itertuples())
    ]
    path = tmp_path / "bundled.gtf.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    read = read_gtf_genes(path)
    assert read["gene"].tolist() == genes["gene"].tolist()
    np.testing.assert_array_equal(read["start"], genes["start"])
    np.testing.assert_array_equal(read["end"], genes["end"])
    a = build_gene_peak_prior(read, data.peaks)
    b = build_gene_peak_prior(genes, data.peaks)
    assert a.nnz > 0 and (a != b).nnz == 0
