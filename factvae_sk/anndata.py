"""AnnData / MuData in and out: what ``fit`` needs from a MuData, results written back.

A MuData with an RNA and an ATAC modality (raw counts in ``.X`` or a named layer) goes in;
out come the count matrices, the cell/gene/peak tables and the gene-peak prior, built from
the genes' and peaks' coordinates exactly as the command line builds it (both read through
:func:`factvae_sk.data._io.paired_from_anndata`). After the fit, :func:`write_results` stores
the results the scverse way: cell codes in ``obsm``, feature embeddings in ``varm``, links
in ``uns`` and the augmented accessibility of chosen peaks as a layer, all writable to
``.h5mu``.

For data that do not fit in memory, :func:`backed_counts` opens a count matrix of a
``.h5ad`` file on disk; ``FactVAE.fit`` then reads it one block of rows at a time (see
:mod:`factvae_sk.data._row_blocks`).

Needs the optional extra ``factvae_sk[anndata]`` (anndata and mudata).
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils import Bunch

from .data._io import _existing, _import_anndata, _reading, paired_from_anndata, read_h5mu
from .data._row_blocks import RowBlockCounts
from .data._validation import GenePeakPrior
from .exceptions import FactVAEWarning
from .prior import build_gene_peak_prior

__all__ = ["backed_counts", "fit_inputs_from_mudata", "read_mudata", "write_results"]

# The keys results are written under.
CODE_KEYS = ("X_factvae_rna", "X_factvae_atac", "X_factvae")
EMBEDDING_KEY = "factvae"
LINKS_KEY = "factvae_links"
AUGMENTED_LAYER = "factvae_augmented"


def _modality(mdata, name, what):
    if name not in mdata.mod:
        raise KeyError(
            f"The MuData has no {what} modality {name!r}; its modalities are "
            f"{list(mdata.mod.keys())} (pass {what.lower()}=<name>)."
        )
    return mdata.mod[name]


def _feature_positions(selection, var, what):
    """Positions in ``var`` of a selection: None (all), a boolean ``var`` column's name, a
    boolean mask, or positions."""
    n = len(var)
    if selection is None:
        return np.arange(n)
    if isinstance(selection, str):
        if selection not in var.columns:
            raise KeyError(f"{what} var has no column {selection!r}; it has {list(var.columns)}.")
        selection = var[selection].to_numpy()
        if selection.dtype != bool:
            raise TypeError(f"{what} var column used as a selection must be boolean.")
    selection = np.asarray(selection)
    if selection.dtype == bool:
        if len(selection) != n:
            raise ValueError(f"A boolean {what} mask needs {n} entries, got {len(selection)}.")
        return np.flatnonzero(selection)
    if not np.issubdtype(selection.dtype, np.integer):
        raise TypeError(f"Select {what} features by a var column name, a mask or positions.")
    if len(selection) and (selection.min() < 0 or selection.max() >= n):
        raise ValueError(f"{what} positions must lie in 0..{n - 1}.")
    return selection


def fit_inputs_from_mudata(
    mdata,
    rna="rna",
    atac="atac",
    *,
    layer=None,
    genes=None,
    gtf=None,
    prior_mode="body_upstream",
    upstream=2000,
    window=150_000,
):
    """What :meth:`FactVAE.fit` needs, from a MuData with paired RNA and ATAC modalities.

    Parameters
    ----------
    mdata : mudata.MuData
        Paired cells: both modalities list the same ``obs_names`` in the same order.
    rna, atac : str, default="rna", "atac"
        Names of the modalities.
    layer : str, default=None
        Layer holding the raw counts in both modalities; ``None`` reads ``.X``.
    genes : str, array-like of bool or int, default=None
        Genes to model: a boolean ``var`` column of the RNA modality (e.g.
        ``"highly_variable"``), a mask or positions. ``None`` keeps every gene.
    gtf : path-like, default=None
        A GTF to look the genes' coordinates up by name; otherwise the RNA ``var`` columns
        ``chrom``, ``start``, ``end``, ``strand`` (0-based half-open) are used.
    prior_mode : {"body_upstream", "tss_window"} or None, default="body_upstream"
        Recipe of :func:`factvae_sk.build_gene_peak_prior`; ``None`` builds no prior.
        Peaks are placed by ``var`` columns ``chrom``/``start``/``end`` or by names
        ``chr:start-end``.
    upstream, window : int, default=2000, 150_000
        Passed to :func:`factvae_sk.build_gene_peak_prior`.

    Returns
    -------
    inputs : Bunch
        ``X_rna`` (float32 CSR, cells x selected genes), ``X_atac`` (float32 CSR),
        ``prior`` (a :class:`GenePeakPrior`, or None), ``genes`` (the selected genes' table),
        ``peaks``, ``cells`` (the RNA ``obs``, ``barcode`` first) and ``gene_positions``
        (the selected genes' positions in the RNA modality). ``fit(**inputs.fit_kwargs)``
        fits on them.

    Raises
    ------
    InputFileError
        Unpaired cells, a missing layer, bad counts or coordinates, naming the modality.
    KeyError
        A missing modality or ``var`` column.

    Examples
    --------
    >>> import anndata, mudata
    >>> from factvae_sk import FactVAE, load_snare_cellline
    >>> from factvae_sk.anndata import fit_inputs_from_mudata, write_results
    >>> data = load_snare_cellline()
    >>> mdata = mudata.MuData({
    ...     "rna": anndata.AnnData(data.rna[:200], var=data.genes.set_index("gene")),
    ...     "atac": anndata.AnnData(data.atac[:200], var=data.peaks.set_index("peak")),
    ... })  # doctest: +SKIP
    >>> inputs = fit_inputs_from_mudata(mdata, genes="highly_variable")  # doctest: +SKIP
    >>> model = FactVAE(max_epochs=2).fit(**inputs.fit_kwargs)  # doctest: +SKIP
    >>> write_results(model, mdata, genes="highly_variable")  # doctest: +SKIP
    >>> mdata.obsm["X_factvae"].shape  # doctest: +SKIP
    (200, 50)
    """
    rna_data = _modality(mdata, rna, "RNA")
    atac_data = _modality(mdata, atac, "ATAC")
    sources = (f"mdata[{rna!r}]", f"mdata[{atac!r}]")
    positions = _feature_positions(genes, rna_data.var, "RNA")
    if len(positions) != rna_data.n_vars:
        rna_data = rna_data[:, positions]
    data = paired_from_anndata(
        rna_data, atac_data, sources, layer=layer, gtf=gtf, prior=prior_mode is not None
    )
    prior = None
    if prior_mode is not None:
        if not data.located:
            warnings.warn(
                f"{sources[0]}: the genes have no coordinates (var columns chrom, start, end, "
                "strand) and no gtf was given: no gene-peak prior.",
                FactVAEWarning,
                stacklevel=2,
            )
        else:
            # The tables were checked (and warned about) as they were read.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FactVAEWarning)
                matrix = build_gene_peak_prior(
                    data.genes, data.peaks, mode=prior_mode, upstream=upstream, window=window
                )
            prior = GenePeakPrior(matrix)
    return Bunch(
        X_rna=data.rna,
        X_atac=data.atac,
        prior=prior,
        genes=data.genes,
        peaks=data.peaks,
        cells=data.cells,
        gene_positions=positions,
        fit_kwargs={"X_rna": data.rna, "X_atac": data.atac, "prior": prior},
    )


def read_mudata(path, rna="rna", atac="atac", **kwargs):
    """Read a ``.h5mu`` file and return :func:`fit_inputs_from_mudata` of it.

    Parameters
    ----------
    path : path-like
        A MuData file.
    rna, atac : str, default="rna", "atac"
        Names of the modalities.
    **kwargs
        Passed to :func:`fit_inputs_from_mudata` (``layer``, ``genes``, ``gtf``, ...).

    Returns
    -------
    inputs : Bunch
        As :func:`fit_inputs_from_mudata`, plus ``mdata``, the MuData read.

    Examples
    --------
    >>> from factvae_sk.anndata import read_mudata
    >>> inputs = read_mudata("multiome.h5mu", layer="counts")  # doctest: +SKIP
    """
    mdata = read_h5mu(path)
    inputs = fit_inputs_from_mudata(mdata, rna, atac, **kwargs)
    inputs.mdata = mdata
    return inputs


def _codes(model, X_rna, X_atac):
    """Posterior means of both encoders, (n_cells, 2 * n_latent) float32."""
    X_rna, X_atac = model._validate_counts(X_rna, X_atac, reset=False)
    dataset = model._dataset(X_rna, X_atac, with_counts=False)
    return model._codes(dataset, ("rna", "atac"))


def _has_coordinates(inputs):
    """Whether the gene and peak tables carry the coordinates distance scores need."""
    genes, peaks = inputs.genes, inputs.peaks
    if not {"chrom", "start", "end", "strand"} <= set(genes.columns):
        return False
    if not {"chrom", "start", "end"} <= set(peaks.columns):
        return False
    return bool(genes["chrom"].notna().any())


def _embedding_rows(table, positions, n_vars):
    """An (n_vars, n_latent) float32 array: the embeddings at ``positions``, NaN elsewhere
    (features the model did not see)."""
    rows = np.full((n_vars, table.shape[1]), np.nan, dtype=np.float32)
    rows[positions] = table.to_numpy(dtype=np.float32)
    return rows


def _h5_table(table):
    """A links table h5py can store: string and numeric columns, a plain string index."""
    table = table.reset_index(drop=True).copy()
    for column in table.columns:
        values = table[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            continue
        table[column] = values.astype(str)
    table.index = table.index.astype(str)
    return table


def write_results(
    model,
    mdata,
    rna="rna",
    atac="atac",
    *,
    layer=None,
    genes=None,
    peaks=None,
    links="prior",
    inputs=None,
):
    """Write a fitted model's results into ``mdata``, in place, the scverse way.

    - ``mdata.obsm``: ``X_factvae_rna`` and ``X_factvae_atac`` (posterior means of each
      encoder) and ``X_factvae`` (the model's ``embedding``, what ``transform`` returns);
      ``X_factvae`` also goes into each modality's ``obsm``, so
      ``scanpy.pp.neighbors(mdata[rna], use_rep="X_factvae")`` works.
    - ``varm["factvae"]`` of each modality: gene and peak embeddings (one row per ``var``;
      NaN for genes the model did not see).
    - ``mdata.uns["factvae_links"]``: :meth:`FactVAE.regulatory_links` as a DataFrame of
      strings and numbers (writable to ``.h5mu``).
    - ``mdata[atac].layers["factvae_augmented"]``: the augmented accessibility
      (:meth:`FactVAE.impute_atac`) of the chosen ``peaks``, sparse, the other peaks'
      columns empty.

    Parameters
    ----------
    model : FactVAE
        Fitted with ATAC on the cells of ``mdata`` (e.g. from :func:`fit_inputs_from_mudata`).
    mdata : mudata.MuData
    rna, atac : str, default="rna", "atac"
    layer : str, default=None
        Layer of the raw counts (as in :func:`fit_inputs_from_mudata`).
    genes : str, array-like of bool or int, default=None
        The genes the model was fitted on, as given to :func:`fit_inputs_from_mudata`.
    peaks : array-like of str, int or bool, default=None
        Peaks whose augmented accessibility is written (names of the ATAC ``var``,
        positions, or a mask); ``None`` writes no layer (all peaks would be dense,
        ``n_cells * n_peaks * 4`` bytes).
    links : {"prior", "window", "all"} or None, default="prior"
        ``candidates`` of :meth:`FactVAE.regulatory_links`; ``None`` writes no links (nor
        does ``"prior"`` for a model fitted without a prior). With gene and peak
        coordinates (``"prior"``, ``"window"``) the links are ranked by its distance-aware
        default score, with its evidence columns; without them (or with ``"all"``), by the
        co-variation score ``"correlation"``.
    inputs : Bunch, default=None
        The output of :func:`fit_inputs_from_mudata`, to avoid reading the counts again.

    Returns
    -------
    None
        ``mdata`` is modified in place.

    Examples
    --------
    >>> from factvae_sk.anndata import write_results
    >>> write_results(model, mdata, peaks=["chr1:10000-10500"])  # doctest: +SKIP
    >>> mdata.write("results.h5mu")  # doctest: +SKIP
    """
    if not model.n_peaks_in_:
        raise ValueError("write_results needs a FactVAE fitted with ATAC.")
    rna_data = _modality(mdata, rna, "RNA")
    atac_data = _modality(mdata, atac, "ATAC")
    if inputs is None:
        inputs = fit_inputs_from_mudata(mdata, rna, atac, layer=layer, genes=genes, prior_mode=None)
    X_rna, X_atac = inputs.X_rna, inputs.X_atac
    if X_rna.shape[1] != model.n_features_in_ or X_atac.shape[1] != model.n_peaks_in_:
        raise ValueError(
            f"The model was fitted on {model.n_features_in_} genes and {model.n_peaks_in_} "
            f"peaks; the MuData's selection has {X_rna.shape[1]} genes and {X_atac.shape[1]} "
            "peaks (pass the same genes= as to fit_inputs_from_mudata)."
        )
    codes = _codes(model, X_rna, X_atac)
    n_latent = model.n_latent
    by_key = {"rna": codes[:, :n_latent], "atac": codes[:, n_latent:], "joint": codes}
    mdata.obsm["X_factvae_rna"] = by_key["rna"].copy()
    mdata.obsm["X_factvae_atac"] = by_key["atac"].copy()
    mdata.obsm["X_factvae"] = by_key[model.embedding].copy()
    for data in (rna_data, atac_data):
        data.obsm["X_factvae"] = by_key[model.embedding].copy()
    rna_data.varm[EMBEDDING_KEY] = _embedding_rows(
        model.feature_embeddings_.rna, inputs.gene_positions, rna_data.n_vars
    )
    atac_data.varm[EMBEDDING_KEY] = model.feature_embeddings_.atac.to_numpy(dtype=np.float32)
    has_prior = model.net_.criterion_.has_prior
    if links is not None and (links != "prior" or has_prior):
        # Coordinates whenever they are known: regulatory_links then ranks by its
        # distance-aware default (without them, by the co-variation score).
        kwargs = {}
        if links != "all" and _has_coordinates(inputs):
            kwargs = {"gene_table": inputs.genes, "peak_table": inputs.peaks}
        table = model.regulatory_links(links, **kwargs)
        gene_names = inputs.genes["gene"].to_numpy(dtype=object)
        peak_names = inputs.peaks["peak"].to_numpy(dtype=object)
        # A model fitted on matrices without names reports positions: name them.
        for column, names in (("gene", gene_names), ("peak", peak_names)):
            if pd.api.types.is_integer_dtype(table[column]):
                table[column] = names[table[column].to_numpy(dtype=np.int64)]
        mdata.uns[LINKS_KEY] = _h5_table(table)
    if peaks is not None:
        peak_names = inputs.peaks["peak"].to_numpy(dtype=object)
        selection = np.asarray(peaks)
        if selection.dtype.kind in "USO":
            index = pd.Index(peak_names).get_indexer(selection.astype(object))
            if (index < 0).any():
                raise ValueError(f"Unknown peak name(s): {list(selection[index < 0][:5])}.")
            selection = index
        positions = _feature_positions(selection, atac_data.var, "ATAC")
        values = model.impute_atac(X_atac, peaks=positions)
        atac_data.layers[AUGMENTED_LAYER] = _augmented_layer(values, positions, atac_data.n_vars)
    return None


def _augmented_layer(values, positions, n_peaks):
    """Cells x all peaks, CSR, holding ``values`` in the columns ``positions``."""
    n_cells = values.shape[0]
    order = np.argsort(positions, kind="stable")
    columns = np.asarray(positions)[order]
    data = np.ascontiguousarray(values[:, order], dtype=np.float32)
    indptr = np.arange(n_cells + 1, dtype=np.int64) * len(columns)
    indices = np.tile(columns, n_cells)
    return sp.csr_matrix((data.ravel(), indices, indptr), shape=(n_cells, n_peaks))


def backed_counts(source, layer=None):
    """A cells x features count matrix on disk that ``FactVAE.fit`` reads block by block.

    Parameters
    ----------
    source : path-like or anndata.AnnData
        A ``.h5ad`` file (opened read-only, ``backed="r"``) or an AnnData opened with
        ``backed="r"``. The counts must be stored as CSR (cells in rows).
    layer : str, default=None
        Layer holding the counts; ``None`` reads ``.X``.

    Returns
    -------
    counts : RowBlockCounts
        Pass it to :meth:`FactVAE.fit` as ``X_rna`` or ``X_atac``: the data are checked and
        preprocessed in passes over blocks of rows, and training reads one batch of rows
        at a time, so memory does not grow with cells x features.

    Examples
    --------
    >>> from factvae_sk import FactVAE
    >>> from factvae_sk.anndata import backed_counts
    >>> X_atac = backed_counts("atac.h5ad")  # doctest: +SKIP
    >>> model = FactVAE().fit(X_rna, X_atac)  # doctest: +SKIP
    """
    anndata = _import_anndata(source)
    if not isinstance(source, (str, Path)):
        if getattr(source, "filename", None) is None:
            raise ValueError("backed_counts needs a .h5ad path or an AnnData opened backed='r'.")
        source = source.filename
    path = _existing(source, "an AnnData file (.h5ad)")
    import h5py

    key = "X" if layer is None else f"layers/{layer}"
    with _reading(path, "AnnData (.h5ad)"):
        handle = h5py.File(path, "r")
        if key not in handle:
            handle.close()
            raise KeyError(f"{path} has no {key!r}.")
        matrix = anndata.io.sparse_dataset(handle[key])
    return RowBlockCounts(matrix, name=str(path))
