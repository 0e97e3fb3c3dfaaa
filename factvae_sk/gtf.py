"""Gene coordinates from a GTF annotation (GENCODE, Ensembl), for the gene-peak prior."""

import gzip

import numpy as np
import pandas as pd

__all__ = ["read_gtf_genes"]

_GTF_COLUMNS = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attr"]


def _attribute(attributes, key):
    """The value of ``key "value";`` in each GTF attribute string (NaN where absent)."""
    return attributes.str.extract(rf'(?:^|;)\s*{key} "([^"]*)"', expand=False)


def _n_header_lines(path):
    """Number of '#' lines at the top of the (possibly gzipped) file."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rt") if gzipped else open(path) as handle:
        for n, line in enumerate(handle):
            if not line.startswith("#"):
                return n
    return 0


def read_gtf_genes(path, *, gene_types=None, chunksize=500_000):
    """Read the gene records of a GTF file into a table of gene coordinates.

    Only rows whose feature (third column) is ``gene`` are kept. GTF coordinates are 1-based
    and closed; they are converted to the 0-based half-open convention of
    :func:`build_gene_peak_prior` (``start - 1``, ``end`` unchanged), so a GTF gene ``1..10``
    becomes ``[0, 10)``.

    Parameters
    ----------
    path : str or path-like
        A GTF file, plain or gzip-compressed (``.gtf.gz``, detected from the name), e.g.
        GENCODE's ``gencode.v44.annotation.gtf.gz`` or Ensembl's
        ``Homo_sapiens.GRCh38.110.gtf.gz``. Use the genome build of your peak calls.
    gene_types : collection of str, optional
        Keep only genes whose ``gene_type`` (GENCODE) or ``gene_biotype`` (Ensembl) is in it,
        e.g. ``{"protein_coding", "lncRNA"}``. By default every gene is kept.
    chunksize : int, default=500_000
        Lines read at a time; only gene rows are kept from each chunk, so memory stays small
        for full-genome annotations.

    Returns
    -------
    genes : pandas.DataFrame
        One row per gene record, in file order, with columns ``gene`` (the ``gene_name``
        attribute, or ``gene_id`` where it has none), ``gene_id``, ``chrom``, ``start``,
        ``end`` (int64, 0-based half-open), ``strand`` and ``gene_type``. A gene name can
        repeat (e.g. pseudoautosomal genes on chrX and chrY); deduplicate before using names
        as an index, e.g. ``genes.drop_duplicates("gene")``.

    Raises
    ------
    ValueError
        If the file has no gene records, or a gene record has no ``gene_id``.

    Examples
    --------
    >>> import gzip, os, tempfile
    >>> line = ('chr1\\tHAVANA\\tgene\\t11869\\t14409\\t.\\t+\\t.\\tgene_id "ENSG00000290825.1"; '
    ...         'gene_type "lncRNA"; gene_name "DDX11L2";\\n')
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.gtf.gz")
    >>> with gzip.open(path, "wt") as f:
    ...     _ = f.write("##description: example\\n" + line)
    >>> read_gtf_genes(path)
          gene            gene_id chrom  start    end strand gene_type
    0  DDX11L2  ENSG00000290825.1  chr1  11868  14409      +    lncRNA
    """
    reader = pd.read_csv(
        path,
        sep="\t",
        header=None,
        # Skipped by count, not with `comment="#"`, which would also cut attribute values.
        skiprows=_n_header_lines(path),
        names=_GTF_COLUMNS,
        usecols=["chrom", "feature", "start", "end", "strand", "attr"],
        dtype={"chrom": str, "feature": str, "strand": str, "attr": str},
        compression="infer",
        quoting=3,  # attribute values are quoted with '"' themselves: read them verbatim
        chunksize=chunksize,
    )
    parts = [chunk[chunk["feature"] == "gene"] for chunk in reader]
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_GTF_COLUMNS)
    if rows.empty:
        raise ValueError(f"{path} has no 'gene' records (third column); is it a GTF file?")
    attr = rows["attr"].astype("string")
    gene_id = _attribute(attr, "gene_id")
    if gene_id.isna().any():
        first = rows.index[gene_id.isna().to_numpy()][0]
        raise ValueError(f"{path}: a gene record has no gene_id attribute: {rows.attr[first]!r}.")
    gene_type = _attribute(attr, "gene_type").fillna(_attribute(attr, "gene_biotype"))
    genes = pd.DataFrame(
        {
            "gene": _attribute(attr, "gene_name").fillna(gene_id).to_numpy(dtype=object),
            "gene_id": gene_id.to_numpy(dtype=object),
            "chrom": rows["chrom"].to_numpy(dtype=object),
            "start": rows["start"].to_numpy(dtype=np.int64) - 1,
            "end": rows["end"].to_numpy(dtype=np.int64),
            "strand": rows["strand"].to_numpy(dtype=object),
            "gene_type": gene_type.to_numpy(dtype=object),
        }
    )
    if gene_types is not None:
        genes = genes[genes["gene_type"].isin(set(gene_types))].reset_index(drop=True)
    return genes
