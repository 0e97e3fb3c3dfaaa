"""Motif activity: motif files, peak sequences, motif matches, chromVAR deviations, tests.

The chain users know from chromVAR / Signac ``RunChromVAR``: read position frequency
matrices (:func:`read_motifs`), fetch the peaks' sequences from a FASTA
(:func:`peak_sequences`, needs the optional ``pyfaidx``; extra ``motifs``), find which peaks
hold which motif (:func:`motif_matches`), score each cell's accessibility of each motif's
peaks against GC- and accessibility-matched background peaks (:func:`motif_deviations` on
counts, :meth:`FactVAE.motif_deviations <factvae_sk.FactVAE.motif_deviations>` on the
augmented accessibility), and test groups of cells (:func:`differential_motifs`).
"""

import re
import warnings
from collections.abc import Mapping
from numbers import Real
from os import PathLike
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from sklearn.utils import Bunch, check_array
from sklearn.utils.validation import check_non_negative

from .analysis import _chromvar, _differential, _motif_scan
from .data._coordinates import genome_contig_names, standard_columns
from .exceptions import FactVAEWarning
from .prior import parse_peak_names

__all__ = [
    "Motif",
    "differential_motifs",
    "gc_content",
    "motif_deviations",
    "motif_matches",
    "peak_sequences",
    "read_motifs",
]


class Motif(NamedTuple):
    """A named position frequency matrix.

    Attributes
    ----------
    name : str
        ``"<ID>_<name>"`` when the file gives both (chromVAR's convention), else either.
    matrix : ndarray of shape (length, 4)
        Counts (or probabilities) of A, C, G, T at each position.

    Examples
    --------
    >>> import numpy as np
    >>> from factvae_sk.motifs import Motif
    >>> motif = Motif("M1_GATA", np.array([[0, 0, 10, 0], [10, 0, 0, 0], [0, 0, 0, 10]]))
    >>> motif.name, motif.matrix.shape
    ('M1_GATA', (3, 4))
    """

    name: str
    matrix: np.ndarray


def read_motifs(path):
    """Read position frequency matrices from a JASPAR, MEME or TRANSFAC file.

    The format is recognized from the content: JASPAR (``>ID name`` then four rows
    ``A [ ... ]``, or four bare rows), MEME (``MOTIF ID name`` then a ``letter-probability
    matrix``) or TRANSFAC (``ID``/``P0`` blocks ended by ``//``).

    Parameters
    ----------
    path : str or path-like
        The motif file.

    Returns
    -------
    list of Motif

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from factvae_sk.motifs import read_motifs
    >>> text = ">MA0004.1 Arnt\\nA [4 19 0 0 0 0]\\nC [16 0 20 0 0 0]\\n"
    >>> text += "G [0 1 0 20 0 20]\\nT [0 0 0 0 20 0]\\n"
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "arnt.jaspar"
    >>> _ = path.write_text(text)
    >>> motif = read_motifs(path)[0]
    >>> motif.name, motif.matrix.shape
    ('MA0004.1_Arnt', (6, 4))
    """
    text = Path(path).read_text()
    if re.search(r"^MOTIF\s", text, re.M):
        motifs = _read_meme(text)
    elif re.search(r"^P[O0]\s", text, re.M):
        motifs = _read_transfac(text)
    else:
        motifs = _read_jaspar(text)
    if not motifs:
        raise ValueError(f"No motif found in {path}: expected JASPAR, MEME or TRANSFAC format.")
    for motif in motifs:
        if motif.matrix.ndim != 2 or motif.matrix.shape[1] != 4 or len(motif.matrix) == 0:
            raise ValueError(f"Motif {motif.name!r} in {path} is not a (length x 4) matrix.")
        if not np.isfinite(motif.matrix).all() or (motif.matrix < 0).any():
            raise ValueError(f"Motif {motif.name!r} in {path} has negative or missing entries.")
    return motifs


def _name(identifier, name):
    return "_".join(part for part in (identifier, name) if part)


def _numbers(line):
    return [float(x) for x in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", line)]


def _read_jaspar(text):
    motifs, header, rows = [], None, []

    def close():
        if rows:
            matrix = np.array(rows, dtype=np.float64)
            if len(matrix) != 4 or len({len(r) for r in rows}) != 1:
                raise ValueError(f"JASPAR motif {header!r} needs 4 rows of equal length.")
            motifs.append(Motif(header or f"motif{len(motifs) + 1}", matrix.T))

    for line in text.splitlines():
        line = line.strip()
        if line.startswith(">"):
            close()
            header, rows = _name(*(line[1:].split(None, 1) + [""])[:2]), []
        elif line:
            rows.append(_numbers(re.sub(r"^[ACGTacgt]\s*", "", line)))
    close()
    return motifs


def _read_meme(text):
    order = "ACGT"
    alphabet = re.search(r"^ALPHABET=\s*(\S+)", text, re.M)
    if alphabet and sorted(alphabet.group(1).upper()) != sorted(order):
        raise ValueError(f"MEME alphabet {alphabet.group(1)!r} is not DNA (ACGT).")
    if alphabet:
        order = alphabet.group(1).upper()
    motifs = []
    for block in re.split(r"^MOTIF\s", text, flags=re.M)[1:]:
        lines = block.splitlines()
        name = _name(*(lines[0].split() + ["", ""])[:2])
        start = next((i for i, line in enumerate(lines) if "letter-probability" in line), None)
        if start is None:
            continue
        width = re.search(r"w=\s*(\d+)", lines[start])
        rows = []
        for line in lines[start + 1 :]:
            values = _numbers(line)
            if len(values) != 4 or (width and len(rows) == int(width.group(1))):
                break
            rows.append(values)
        matrix = np.array(rows, dtype=np.float64).reshape(-1, 4)
        motifs.append(Motif(name, matrix[:, [order.index(base) for base in "ACGT"]]))
    return motifs


def _read_transfac(text):
    motifs = []
    for block in re.split(r"^//", text, flags=re.M):
        fields, rows, columns = {}, [], None
        for line in block.splitlines():
            key, _, rest = line.strip().partition(" ")
            if key in ("P0", "PO"):
                columns = rest.split()
            elif columns and key.isdigit():
                rows.append(_numbers(rest)[: len(columns)])
            elif key in ("AC", "ID", "NA") and key not in fields:
                fields[key] = rest.strip()
        if rows:
            matrix = np.array(rows, dtype=np.float64)
            order = [c.upper() for c in columns]
            if sorted(order) != sorted("ACGT"):
                raise ValueError(f"TRANSFAC columns must be A, C, G, T; got {columns}.")
            matrix = matrix[:, [order.index(base) for base in "ACGT"]]
            # JASPAR's TRANSFAC export: AC the matrix ID, ID (or NA) the factor's name.
            name = _name(fields.get("AC"), fields.get("NA") or fields.get("ID"))
            motifs.append(Motif(name or f"motif{len(motifs) + 1}", matrix))
    return motifs


def _as_motifs(motifs):
    """Motif files, Motif tuples, ``{name: matrix}`` or Biopython/pyjaspar motif objects."""
    if isinstance(motifs, (str, PathLike)):
        return read_motifs(motifs)
    if isinstance(motifs, Mapping):
        motifs = [Motif(str(k), np.asarray(v, dtype=np.float64)) for k, v in motifs.items()]
    out = []
    for motif in motifs:
        if isinstance(motif, (str, PathLike)):
            out.extend(read_motifs(motif))
        elif isinstance(motif, Motif):
            out.append(Motif(motif.name, np.asarray(motif.matrix, dtype=np.float64)))
        elif hasattr(motif, "counts"):  # Bio.motifs.Motif, as pyjaspar returns
            matrix = np.column_stack([np.asarray(motif.counts[b], float) for b in "ACGT"])
            name = _name(getattr(motif, "matrix_id", None), getattr(motif, "name", None))
            out.append(Motif(name, matrix))
        else:
            raise TypeError(
                "motifs must be a motif file, a list of Motif or Bio.motifs objects, or a "
                f"{{name: (length x 4) matrix}} dict; got an item of type {type(motif).__name__}."
            )
    for motif in out:
        if motif.matrix.ndim != 2 or motif.matrix.shape[1] != 4 or len(motif.matrix) == 0:
            raise ValueError(f"Motif {motif.name!r} is not a (length x 4) matrix.")
    if not out:
        raise ValueError("No motifs given.")
    return out


def _peak_table(peaks):
    """``chrom``, ``start``, ``end`` and ``peak`` names from a table or ``chr:start-end``."""
    if isinstance(peaks, pd.DataFrame):
        peaks = standard_columns(peaks, ("chrom", "start", "end"), "The peak table")
        missing = {"chrom", "start", "end"} - set(peaks.columns)
        if missing:
            raise ValueError(f"The peak table lacks column(s) {sorted(missing)}.")
        table = peaks[["chrom", "start", "end"]].copy()
        names = peaks["peak"] if "peak" in peaks else None
    else:
        table = parse_peak_names(list(np.asarray(peaks, dtype=object).astype(str)))
        names = table.pop("peak")
    table["start"] = table["start"].astype(np.int64)
    table["end"] = table["end"].astype(np.int64)
    if (table.end <= table.start).any() or (table.start < 0).any():
        raise ValueError("Every peak needs 0 <= start < end.")
    if names is None:
        start, end = table.start.astype(str), table.end.astype(str)
        names = table.chrom.astype(str) + ":" + start + "-" + end
    table["peak"] = np.asarray(names, dtype=object)
    return table.reset_index(drop=True)


def _open_genome(genome):
    if isinstance(genome, Mapping):
        return genome
    try:
        import pyfaidx
    except ImportError as error:
        raise ImportError(
            "Reading a FASTA needs pyfaidx: pip install 'factvae_sk[motifs]' (or pass the "
            "genome as a {contig: sequence} dict)."
        ) from error
    return pyfaidx.Fasta(str(genome), sequence_always_upper=True, as_raw=True)


def peak_sequences(peaks, genome):
    """The DNA sequence of every peak, upper-cased (soft-masked bases included).

    Parameters
    ----------
    peaks : DataFrame or array-like of str
        A table with ``chrom``, ``start``, ``end`` (0-based, half-open, as BED) or names
        ``chrom:start-end``.
    genome : str, path-like or mapping
        A FASTA file (indexed by ``pyfaidx``, which writes a ``.fai`` beside it if missing),
        or a ``{contig: sequence}`` mapping.

    Returns
    -------
    list of str or None
        ``None`` for a peak on a contig the genome lacks or running past its end, with one
        :class:`~factvae_sk.exceptions.FactVAEWarning` naming how many and a few of them.

    Examples
    --------
    >>> from factvae_sk.motifs import peak_sequences
    >>> peak_sequences(["chr1:2-6", "chrUn:0-3"], {"chr1": "ACgtaCGT"})
    ['GTAC', None]
    """
    table = _peak_table(peaks)
    fasta = _open_genome(genome)
    contigs = set(fasta.keys())
    # The genome's spelling of each chromosome (chr1 vs 1, chrM vs MT), said in a warning.
    where = "the genome" if isinstance(genome, Mapping) else f"the genome {genome}"
    table["chrom"] = genome_contig_names(table["chrom"], contigs, "peaks", where)
    sequences, missing = [], []
    for chrom, start, end, name in table.itertuples(index=False):
        if chrom not in contigs or end > len(fasta[chrom]):
            sequences.append(None)
            missing.append(name)
            continue
        sequences.append(str(fasta[chrom][start:end]).upper())
    if missing:
        warnings.warn(
            f"{len(missing)} of {len(table)} peaks have no sequence in the genome (unknown "
            f"contig or past its end), e.g. {missing[:3]}: they are left out of motif "
            "matching and motif deviations.",
            FactVAEWarning,
            stacklevel=2,
        )
    return sequences


def gc_content(sequences):
    """Fraction of G and C among the A, C, G, T bases of each sequence (NaN without any).

    Examples
    --------
    >>> from factvae_sk.motifs import gc_content
    >>> gc_content(["ACGT", "GGNN", None]).tolist()
    [0.5, 1.0, nan]
    """
    out = np.full(len(sequences), np.nan)
    for i, sequence in enumerate(sequences):
        if sequence is None:
            continue
        counts = np.bincount(_motif_scan.encode(sequence), minlength=5)
        if counts[:4].sum():
            out[i] = (counts[1] + counts[2]) / counts[:4].sum()
    return out


def motif_matches(
    peaks, genome, motifs, *, p_value=5e-5, pseudocount=0.8, value="match", engine="auto"
):
    """Which peaks hold which motif: a sparse peaks x motifs matrix, as motifmatchr gives.

    Each motif's counts become a natural-log odds matrix against the base composition of
    the peaks (strand-symmetric); a peak matches when a window on either strand scores at
    or above the threshold whose p-value, under that background, is ``p_value``.

    Parameters
    ----------
    peaks : DataFrame or array-like of str
        See :func:`peak_sequences`.
    genome : str, path-like or mapping
        See :func:`peak_sequences`.
    motifs : str, path-like, list or dict
        A motif file (:func:`read_motifs`), a list of files, :class:`Motif` or
        ``Bio.motifs`` objects (as ``pyjaspar`` returns), or ``{name: (length x 4) counts}``.
    p_value : float, default=5e-5
        Per-window p-value of a hit (motifmatchr's default).
    pseudocount : float, default=0.8
        Pseudo-reads per position (motifmatchr's default).
    value : {"match", "score"}, default="match"
        Store 1 for a match, or the best log-odds score of the peak.
    engine : {"auto", "numpy", "moods"}, default="auto"
        The scanner: ``MOODS-python`` (extra ``moods``; many times faster, see the README),
        or vectorized numpy; both give the same matrix. ``"auto"`` uses MOODS when it is
        installed.

    Returns
    -------
    Bunch
        ``matches`` (csr_matrix, n_peaks x n_motifs, float32), ``motif_names``,
        ``peak_names``, ``gc`` (GC fraction per peak, NaN without sequence),
        ``thresholds`` (score threshold per motif) and ``background`` (A, C, G, T).

    Examples
    --------
    >>> import numpy as np
    >>> from factvae_sk.motifs import motif_matches
    >>> rng = np.random.default_rng(0)
    >>> genome = {"chr1": "".join(rng.choice(list("ACGT"), 5000))}
    >>> genome["chr1"] = genome["chr1"][:100] + "TTGACGTCAA" + genome["chr1"][110:]
    >>> motif = {"CREB": np.eye(4)[[3, 3, 2, 0, 1, 2, 3, 1, 0, 0]] * 20}
    >>> found = motif_matches(["chr1:50-250", "chr1:1000-1200"], genome, motif)
    >>> found.matches.toarray().ravel().tolist()
    [1.0, 0.0]
    """
    if value not in ("match", "score"):
        raise ValueError(f"value must be 'match' or 'score'; got {value!r}.")
    if engine not in ("auto", "numpy", "moods"):
        raise ValueError(f"engine must be 'auto', 'numpy' or 'moods'; got {engine!r}.")
    if engine == "auto":
        engine = "moods" if _have_moods() else "numpy"
    if not (isinstance(p_value, Real) and 0 < p_value < 1):
        raise ValueError(f"p_value must lie in (0, 1); got {p_value!r}.")
    if not (isinstance(pseudocount, Real) and pseudocount > 0):
        raise ValueError(f"pseudocount must be positive; got {pseudocount!r}.")
    motifs = _as_motifs(motifs)
    table = _peak_table(peaks)
    sequences = peak_sequences(table, genome)
    present = [s for s in sequences if s is not None]
    background = _motif_scan.base_frequencies(present)
    weights = [_motif_scan.log_odds(m.matrix, background, pseudocount) for m in motifs]
    thresholds = np.array([_motif_scan.score_threshold(w, background, p_value) for w in weights])
    if engine == "moods":
        found = _motif_scan.scan_moods(present, weights, thresholds, background, value)
    else:
        found = _motif_scan.scan_numpy(present, weights, thresholds, value)
    # Rows back at the positions of all peaks: those without sequence match nothing.
    rows = np.flatnonzero([s is not None for s in sequences])
    matches = _place_rows(found, rows, len(sequences))
    return Bunch(
        matches=matches,
        motif_names=np.array([m.name for m in motifs], dtype=object),
        peak_names=table.peak.to_numpy(),
        gc=gc_content(sequences),
        thresholds=thresholds,
        background=background,
    )


def _have_moods():
    try:
        import MOODS.scan  # noqa: F401
    except ImportError:
        return False
    return True


def _place_rows(found, rows, n_rows):
    coo = found.tocoo()
    return sp.csr_matrix((coo.data, (rows[coo.row], coo.col)), shape=(n_rows, found.shape[1]))


def motif_deviations(X_atac, matches, *, gc=None, motif_names=None, n_background=50, seed=0):
    """chromVAR deviations and z-scores of every cell and motif, on raw counts.

    The same computation as :meth:`FactVAE.motif_deviations
    <factvae_sk.FactVAE.motif_deviations>`, on the counts themselves (chromVAR's
    ``computeDeviations``), in blocks of cells: the sparse counts stay sparse.

    Parameters
    ----------
    X_atac : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_peaks)
        Fragment counts in peaks (or any non-negative accessibility, e.g.
        :meth:`FactVAE.impute_atac <factvae_sk.FactVAE.impute_atac>`). A cell without
        counts in the peaks gets NaN.
    matches : Bunch, sparse matrix, ndarray or DataFrame of shape (n_peaks, n_motifs)
        :func:`motif_matches`' result, or a precomputed matrix (then ``gc`` is needed).
    gc : array-like of shape (n_peaks,), default=None
        GC fraction of each peak (NaN: left out); taken from ``matches`` when it is a Bunch.
    motif_names : array-like of str, default=None
        Overrides the names carried by ``matches``.
    n_background : int, default=50
        Background peak sets (chromVAR's ``niterations``).
    seed : int, default=0
        Seed of the background peaks.

    Returns
    -------
    Bunch
        ``deviations`` and ``z`` (DataFrames, cells x motifs, float32; NaN for a motif
        without matches or a cell without counts in the peaks) and ``background_peaks``
        (n_used_peaks x n_background positions among all peaks).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from factvae_sk.motifs import motif_deviations
    >>> rng = np.random.default_rng(0)
    >>> counts = sp.random(40, 300, density=0.2, random_state=0, format="csr") * 10
    >>> matches = sp.random(300, 3, density=0.1, random_state=1, format="csr")
    >>> matches.data[:] = 1
    >>> result = motif_deviations(counts.ceil(), matches, gc=rng.uniform(0.3, 0.6, 300))
    >>> result.z.shape
    (40, 3)
    """
    _chromvar.check_background(n_background)
    X = check_array(X_atac, accept_sparse=("csr", "csc", "coo"), dtype=(np.float64, np.float32))
    check_non_negative(X, "motif_deviations (X_atac)")
    X = sp.csr_matrix(X) if sp.issparse(X) else X
    matrix, names, gc, keep = _chromvar.check_matches(matches, X.shape[1], gc, motif_names)
    cell_names = X_atac.index if isinstance(X_atac, pd.DataFrame) else None

    def blocks():
        for rows in _chromvar.cell_chunks(X.shape[0], len(keep)):
            yield rows, X[rows][:, keep]

    deviation, zscore, background = _chromvar.deviations(
        blocks, X.shape[0], matrix, gc, n_background, seed
    )
    return _chromvar.deviations_result(deviation, zscore, background, names, cell_names, keep)


def differential_motifs(deviations, groups, *, reference="rest", method="wilcoxon"):
    """Motifs whose activity differs between groups of cells: one tidy table.

    Each group is tested against the rest (or one ``reference`` group), motif by motif, with
    the tests of :meth:`FactVAE.differential_peaks <factvae_sk.FactVAE.differential_peaks>`,
    as Signac's ``FindMarkers`` on a chromVAR assay (mean difference, not fold change: the
    z-scores are centred at 0).

    Parameters
    ----------
    deviations : Bunch, DataFrame or ndarray of shape (n_cells, n_motifs)
        :func:`motif_deviations`' result (its z-scores are tested), or a cells x motifs
        table of any activity score.
    groups : array-like of shape (n_cells,)
        Group label of each cell.
    reference : "rest" or a label of ``groups``, default="rest"
    method : {"wilcoxon", "t-test"}, default="wilcoxon"
        Mann-Whitney U test or Welch's t-test, two-sided.

    Returns
    -------
    DataFrame
        One row per (group, motif): ``group``, ``motif``, ``mean_group``,
        ``mean_reference``, ``mean_difference``, ``statistic``, ``pvalue``, ``pvalue_adj``
        (Benjamini-Hochberg within the group); sorted by group, then p-value (ties: larger
        difference first).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from factvae_sk.motifs import differential_motifs
    >>> rng = np.random.default_rng(0)
    >>> z = pd.DataFrame(rng.normal(size=(60, 3)), columns=["GATA1", "SPI1", "CTCF"])
    >>> z.loc[:29, "GATA1"] += 3
    >>> table = differential_motifs(z, ["a"] * 30 + ["b"] * 30)
    >>> table[table.group == "a"].motif.iloc[0]
    'GATA1'
    """
    if method not in ("wilcoxon", "t-test"):
        raise ValueError(f"method must be 'wilcoxon' or 't-test'; got {method!r}.")
    if isinstance(deviations, Mapping) and "z" in deviations:
        deviations = deviations["z"]
    if isinstance(deviations, pd.DataFrame):
        names, values = deviations.columns.to_numpy(), deviations.to_numpy(np.float64)
    else:
        values = np.asarray(deviations, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f"deviations must be cells x motifs (2-D); got {values.shape}.")
        names = np.array([f"motif{i}" for i in range(values.shape[1])], dtype=object)
    groups, tested = _differential.check_groups(groups, len(values), reference)
    tables = []
    for label in tested:
        in_reference = (groups != label) if reference == "rest" else (groups == reference)
        # NaN (a motif without matches, a cell without counts) is left out of the test.
        with np.errstate(invalid="ignore"):
            result = _differential.compare_block(values, groups == label, in_reference, method)
        table = pd.DataFrame(
            {
                "group": label,
                "motif": names,
                "mean_group": result["mean_group"],
                "mean_reference": result["mean_reference"],
                "mean_difference": result["mean_group"] - result["mean_reference"],
                "statistic": result["statistic"],
                "pvalue": result["pvalue"],
            }
        )
        table["pvalue_adj"] = stats.false_discovery_control(np.nan_to_num(table.pvalue, nan=1.0))
        tables.append(
            table.sort_values(["pvalue", "mean_difference"], ascending=[True, False], kind="stable")
        )
    return pd.concat(tables, ignore_index=True)
