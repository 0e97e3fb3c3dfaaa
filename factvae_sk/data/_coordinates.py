"""Gene and peak tables as users have them: chromosome naming, missing coordinates, column
names, strands and repeated names.

Everything that joins genes to peaks by chromosome (the prior, TSS distances, link features,
the command line) and peaks to a genome FASTA (motifs) goes through here, so that all agree on
what is the same chromosome and all say so the same way. Tables are never modified: a function
that changes something returns a new table and a sentence saying what it changed.

Conventions handled (each with a :class:`~factvae_sk.exceptions.FactVAEWarning` that says
what was done):

- ``chr1`` (UCSC, 10x, GENCODE) and ``1`` (Ensembl, NCBI): the same chromosome; so are
  ``chrM``, ``chrMT``, ``M`` and ``MT``, and UCSC contigs such as ``chrUn_KI270742v1`` or
  ``chr1_KI270706v1_random`` and their Ensembl names ``KI270742.1``, ``KI270706.1``. Names
  that differ only so are renamed to the peak table's (or the genome's) spelling;
- column names of other tools: ``Chromosome``/``Start``/``End``/``Strand`` (pyranges),
  ``seqnames`` (GenomicRanges), ``chromosome_name``/``start_position``/``end_position``
  (BioMart), ``chromStart``/``chromEnd`` (UCSC), any capitalisation;
- strands written ``1``/``-1`` (Ensembl, BioMart) read as ``+``/``-``.

Errors name the table, the problem and the fix: no gene with coordinates, or two tables that
share no chromosome at all (which would give an empty prior).
"""

import re
import warnings

import numpy as np
import pandas as pd

from ..exceptions import FactVAEWarning
from ._validation import _user_stacklevel

__all__ = [
    "align_chromosomes",
    "chromosome_key",
    "check_gene_peak_tables",
    "genome_contig_names",
    "make_names_unique",
    "standard_columns",
    "standard_strands",
]

# Other tools' names for the coordinate columns, compared in lower case.
_ALIASES = {
    "chrom": ("chrom", "chr", "chromosome", "chromosome_name", "seqname", "seqnames", "seqid"),
    "start": ("start", "chromstart", "start_position", "gene_start", "txstart"),
    "end": ("end", "chromend", "end_position", "gene_end", "txend"),
    "strand": ("strand",),
}
# UCSC names of GenBank contigs: chrUn_KI270742v1, chr1_KI270706v1_random, chr1_KN196472v1_fix.
_UCSC_CONTIG = re.compile(r"^chr[^_]+_([A-Za-z]{2}\d+)v(\d+)(?:_(?:random|alt|fix))?$", re.I)
_MITOCHONDRIA = {"M", "MT"}
_FLOAT_NUMBER = re.compile(r"^\d+\.0$")
# Ensembl's and BioMart's strands.
_STRANDS = {"1": "+", "+1": "+", "-1": "-", "1.0": "+", "-1.0": "-"}
# "Most of the peaks" on contigs without genes, and a prior "nearly empty".
_MOST = 0.5
_NEARLY_EMPTY = 0.01


def warn(message):
    """A :class:`FactVAEWarning` pointing at the user's call."""
    warnings.warn(message, FactVAEWarning, stacklevel=_user_stacklevel())


def _few(values, n=3):
    """The first ``n`` values quoted, and how many more."""
    values = list(values)
    shown = ", ".join(repr(str(v)) for v in values[:n])
    return shown + (f" and {len(values) - n} more" if len(values) > n else "")


def chromosome_key(name):
    """What a chromosome name means, whatever the naming convention.

    Examples
    --------
    >>> names = ["chr1", "1", "1.0", "chrM", "MT", "chrUn_KI270742v1", "GL000009.2"]
    >>> [chromosome_key(name) for name in names]
    ['1', '1', '1', 'MT', 'MT', 'KI270742.1', 'GL000009.2']
    """
    name = str(name)
    if _FLOAT_NUMBER.match(name):  # 1.0: a numeric column that pandas read as float
        name = name[:-2]
    contig = _UCSC_CONTIG.match(name)
    if contig:
        return f"{contig[1].upper()}.{contig[2]}"
    if name[:3].lower() == "chr" and len(name) > 3:
        name = name[3:]
    return "MT" if name.upper() in _MITOCHONDRIA else name


def standard_columns(table, columns, what):
    """``table`` with the coordinate ``columns`` under their standard names (``chrom``,
    ``start``, ``end``, ``strand``): a renamed copy when it used another tool's names (see
    the module), the table itself otherwise. A column named twice (``chr`` and
    ``chromosome``) is an error; a missing one is left for the caller to report."""
    rename = {}
    for column in columns:
        if column in table.columns:
            continue
        found = [c for c in table.columns if str(c).lower() in _ALIASES[column]]
        if len(found) > 1:
            raise ValueError(
                f"{what} has several columns that could be {column!r}: {found}; keep one, or "
                f"name the right one {column!r}."
            )
        if found:
            rename[found[0]] = column
    return table.rename(columns=rename) if rename else table


def standard_strands(strand, what):
    """Strands as ``+``/``-`` (others: unknown), and a sentence when ``1``/``-1`` were
    read as ``+``/``-`` (else ``None``)."""
    strand = np.asarray(strand, dtype=object)
    # Few distinct values: look at those, not at every gene.
    values = pd.unique(strand)
    ensembl = {v: _STRANDS[str(v).strip()] for v in values if str(v).strip() in _STRANDS}
    if not ensembl:
        return strand, None
    renamed = pd.Series(strand).map(ensembl)
    is_ensembl = renamed.notna().to_numpy()
    out = np.where(is_ensembl, renamed.to_numpy(dtype=object), strand)
    return out, f"{what}: read the strands 1/-1 of {int(is_ensembl.sum())} genes as '+'/'-'"


def align_chromosomes(names, reference, keep_present=True):
    """Rename ``names`` whose chromosome also appears in ``reference`` under another
    spelling (``1`` vs ``chr1``, ``MT`` vs ``chrM``) to the reference's spelling.

    Parameters
    ----------
    names : array-like of str (or missing)
    reference : dict or array-like of str
        The spellings to use; as a dict, ``{name: count}`` (the most frequent wins where the
        reference itself spells a chromosome several ways).

    keep_present : bool, default=True
        Leave a name that is itself in ``reference`` as it is (``False`` to bring a table's
        own spellings together: ``reference`` is then its own counts).

    Returns
    -------
    renamed : ndarray of object
        ``names`` with the renamings applied (missing values stay missing).
    changes : dict
        ``{old: new}`` for every name that was renamed.
    """
    names = pd.Series(np.asarray(names, dtype=object))
    if not isinstance(reference, dict):
        reference = pd.Series(np.asarray(reference, dtype=object)).dropna().astype(str)
        reference = reference.value_counts(sort=False).to_dict()
    spelling = {}
    for name, count in reference.items():
        key = chromosome_key(name)
        if key not in spelling or count > reference[spelling[key]]:
            spelling[key] = name
    changes = {}
    # The distinct names in order of appearance (the warning lists them so).
    for name in dict.fromkeys(str(n) for n in pd.unique(names.to_numpy()) if not pd.isna(n)):
        target = spelling.get(chromosome_key(name))
        if target is not None and target != name and not (keep_present and name in reference):
            changes[name] = target
    if not changes:
        return names.to_numpy(dtype=object), {}
    text = names.astype("string")
    renamed = text.map(changes).where(text.isin(list(changes)), names)
    return renamed.to_numpy(dtype=object), changes


def _describe(changes):
    pairs = [f"{old!r} as {new!r}" for old, new in list(changes.items())[:4]]
    more = f" and {len(changes) - 4} more" if len(changes) > 4 else ""
    return ", ".join(pairs) + more


def _located(table, columns):
    """Rows with every coordinate column present."""
    return table[list(columns)].notna().all(axis=1).to_numpy()


def _chrom_counts(chrom, located):
    """Rows per chromosome name (as text), among the ``located`` rows."""
    counts = pd.Series(np.asarray(chrom, dtype=object)[located]).value_counts(sort=False)
    counts.index = counts.index.astype(str)
    return counts.groupby(level=0, sort=False).sum()


def check_gene_peak_tables(genes, peaks, what=("genes", "peaks"), *, checked=False):
    """The gene and peak tables, made to agree on chromosome names; warnings and errors for
    what would otherwise give missing or no links silently.

    Call it with tables that have the standard columns (``chrom``, ``start``, ``end`` and,
    for genes, ``strand``). Genes' chromosome names are renamed to the peak table's spelling
    where they differ only by convention (and peaks spelled two ways in the peak table to
    its most frequent one); both tables are returned, as new tables where something changed.

    Warns (:class:`FactVAEWarning`) when names were renamed, some genes or peaks lack
    coordinates (they take part in no link), most peaks lie on contigs without genes, or
    genes or peaks repeat a name. Raises ``ValueError`` when no gene has coordinates or the
    tables share no chromosome. ``what`` names the two tables in messages. ``checked=True``
    (tables already returned by this function) skips the warnings, not the renaming.
    """
    gene_what, peak_what = what
    say = (lambda message: None) if checked else warn
    genes_located = _located(genes, ("chrom", "start", "end"))
    peaks_located = _located(peaks, ("chrom", "start", "end"))
    if len(genes) and not genes_located.any():
        raise ValueError(
            f"{gene_what}: none of the {len(genes)} genes has coordinates (chrom, start and "
            "end are missing), so no gene can be linked to a peak. Give the genes "
            "coordinates (e.g. from the annotation's GTF: factvae_sk.read_gtf_genes, or "
            "--gtf on the command line), or fit without a prior."
        )
    if len(peaks) and not peaks_located.any():
        raise ValueError(
            f"{peak_what}: none of the {len(peaks)} peaks has coordinates (chrom, start and "
            "end are missing). Give them coordinates or names such as 'chr1:100-200', or fit "
            "without a prior."
        )
    for table, located, kind, table_what in (
        (genes, genes_located, "gene", gene_what),
        (peaks, peaks_located, "peak", peak_what),
    ):
        missing = int((~located).sum())
        if missing:
            say(
                f"{table_what}: {missing} of {len(table)} {kind}s have no coordinates (chrom, "
                f"start or end missing), e.g. {_few(_names(table, kind)[~located])}: they are "
                "linked to nothing (no prior link, no distance). Add their coordinates to "
                "link them."
            )
        if kind in table.columns:
            duplicated = table[kind][table[kind].duplicated()].astype(str).unique()
            if len(duplicated):
                say(
                    f"{table_what}: {len(duplicated)} {kind} name(s) repeat, e.g. "
                    f"{_few(duplicated)}. Each row is still its own {kind} (by position), but "
                    "results named by "
                    f"{kind} are ambiguous: make the names unique first (e.g. AnnData's "
                    "var_names_make_unique())."
                )

    peak_counts = _chrom_counts(peaks["chrom"], peaks_located)
    # Peaks spelled two ways in their own table (chr1 and 1) are first brought together.
    peak_chrom, peak_changes = align_chromosomes(
        peaks["chrom"], peak_counts.to_dict(), keep_present=False
    )
    if peak_changes:
        peak_counts = _chrom_counts(peak_chrom, peaks_located)
        peaks = peaks.assign(chrom=peak_chrom)
    gene_chrom, gene_changes = align_chromosomes(genes["chrom"], peak_counts.to_dict())
    if gene_changes:
        genes = genes.assign(chrom=gene_chrom)
    if peak_changes or gene_changes:
        renamed = [
            f"{_describe(changes)} in {table_what}"
            for table_what, changes in ((gene_what, gene_changes), (peak_what, peak_changes))
            if changes
        ]
        say(
            f"{gene_what} and {peak_what} name chromosomes differently; read "
            f"{'; '.join(renamed)} (your tables are not changed). Name the chromosomes the "
            "same way in both tables to silence this."
        )

    gene_counts = _chrom_counts(genes["chrom"], genes_located)
    if (
        len(gene_counts)
        and len(peak_counts)
        and not gene_counts.index.isin(peak_counts.index).any()
    ):
        raise ValueError(
            f"{gene_what} and {peak_what} share no chromosome, so no gene can be linked to a "
            f"peak: {gene_what} has {_few(gene_counts.index, 4)}, {peak_what} has "
            f"{_few(peak_counts.index, 4)}. Give both tables in the same genome assembly "
            "and chromosome naming (UCSC 'chr1' or Ensembl '1' are matched automatically)."
        )
    orphan = ~peak_counts.index.isin(gene_counts.index)
    n_orphan = int(peak_counts[orphan].sum())
    if n_orphan > _MOST * peak_counts.sum():
        say(
            f"{n_orphan} of {int(peak_counts.sum())} peaks of {peak_what} lie on chromosomes "
            f"or contigs where {gene_what} has no gene (e.g. {_few(peak_counts.index[orphan])}):"
            " they are linked to no gene. Check that both tables are of the same genome."
        )
    return genes, peaks


def _names(table, kind):
    if kind in table.columns:
        return table[kind].to_numpy(dtype=object)
    return np.asarray(table.index, dtype=object)


def check_prior_links(prior, genes, what=("genes", "peaks")):
    """Raise when a prior built from coordinates links nothing; warn when it links almost
    no gene (fewer than 1% of the genes with coordinates)."""
    gene_what, peak_what = what
    located = int(_located(genes, ("chrom", "start", "end")).sum())
    if prior.nnz == 0 and located and prior.shape[1]:
        raise ValueError(
            f"No peak of {peak_what} lies near a gene of {gene_what}: the prior links "
            "nothing, though the tables share chromosomes. Check that both use the same "
            "genome assembly and 0-based coordinates in bp, or widen the window (upstream, "
            "window); to fit without a prior pass prior=None (--no-prior)."
        )
    linked = int((prior.getnnz(axis=1) > 0).sum())
    if prior.nnz and located >= 100 and linked < _NEARLY_EMPTY * located:
        warn(
            f"The prior links only {linked} of the {located} genes of {gene_what} that have "
            f"coordinates to a peak of {peak_what}: check that both tables use the same "
            "genome assembly."
        )


def genome_contig_names(chrom, contigs, what="peaks", genome="the genome"):
    """Peak chromosome names as the genome FASTA spells them (``chr1`` vs ``1``, ...), with a
    warning saying what was renamed; an error when no peak's chromosome is in the genome."""
    chrom = np.asarray(chrom, dtype=object)
    contigs = {str(name): 1 for name in contigs}
    renamed, changes = align_chromosomes(chrom, contigs)
    if changes:
        warn(
            f"{what} and {genome} name chromosomes differently; read {_describe(changes)} "
            f"in {what}. Name them the same way to silence this."
        )
    present = pd.Series(renamed).astype(str).isin(list(contigs)).to_numpy()
    if len(chrom) and not present.any():
        raise ValueError(
            f"None of the {len(chrom)} peaks of {what} lies on a sequence of {genome}: the "
            f"peaks are on {_few(pd.unique(chrom), 4)}, the genome has "
            f"{_few(list(contigs), 4)}. Use the genome FASTA of the assembly the peaks were "
            "called on."
        )
    return renamed


def make_names_unique(names, join="-"):
    """AnnData's ``var_names_make_unique``: the second ``A`` becomes ``A-1``, the third
    ``A-2``, never clashing with an existing name; returns ``(names, repeated)``.

    Examples
    --------
    >>> make_names_unique(["A", "B", "A", "A-1", "A"])[0].tolist()
    ['A', 'B', 'A-2', 'A-1', 'A-3']
    """
    names = pd.Series(np.asarray(names, dtype=object)).astype(str)
    duplicated = names.duplicated().to_numpy()
    repeated = names[duplicated].unique().tolist()
    if not repeated:
        return names.to_numpy(dtype=object), []
    out = names.to_numpy(dtype=object).copy()
    taken = set(names)
    counter = {}
    for i in np.flatnonzero(duplicated):
        base = out[i]
        k = counter.get(base, 0)
        while True:
            k += 1
            candidate = f"{base}{join}{k}"
            if candidate not in taken:
                break
        counter[base] = k
        taken.add(candidate)
        out[i] = candidate
    return out, repeated
