"""The estimator's analysis methods: augmented accessibility, regulatory links, differential
accessibility, motif activity.

:class:`FactVAEAnalysisMixin` is a base class of :class:`~factvae_sk.FactVAE`. Each method
checks its arguments and hands the work to its module (``_accessibility``, ``_links``,
``_differential``, ``_chromvar``), so that ``_estimator.py`` reads as the scikit-learn contract.
"""

from numbers import Integral, Real

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..analysis import (
    _accessibility,
    _chromvar,
    _cross_modal,
    _differential,
    _link_context,
    _link_model,
    _link_scores,
)
from ..data import _batches
from ..data._coordinates import warn
from ..data._dataset import PairedCountsDataset, log_library_size
from ..data._row_blocks import RowBlockCounts
from ..data._validation import check_counts, check_prior
from ..prior import _check_tables, _prior_matrix, _tss_distance
from ._cell_inputs import CellInputsMixin


class FactVAEAnalysisMixin(CellInputsMixin):
    """Downstream outputs of a fitted :class:`~factvae_sk.FactVAE` (see each method), built
    on the cell inputs and the fitted model's read access (``FactVAEBase``) alone."""

    def impute_atac(
        self,
        X_atac=None,
        X_rna=None,
        *,
        peaks=None,
        library_size=None,
        calibrate=True,
        rna_map="ridge",
        n_neighbors=15,
        n_samples=None,
        random_state=None,
        batch=None,
        decode_batch=None,
        out=None,
    ):
        """Denoised ("augmented") accessibility: ``exp(s_a) * softmax(z_a @ W_a + b)``.

        For cells with ATAC counts, ``z_a`` is the ATAC encoder's posterior mean and
        ``exp(s_a)`` the cell's ATAC total. For cells measured by RNA alone, pass ``X_rna``
        without ``X_atac``: ``z_a`` is then predicted from the RNA code by a map learned at
        fit on the paired training cells (``rna_map``), and the library size is the
        training cells' median ATAC total unless ``library_size`` is given.

        The ATAC path denoises the cells the model was fitted on; on cells it has not seen,
        the ATAC encoder generalizes poorly (real data, held-out cells: no better than their
        raw counts), and imputing from ``X_rna`` is the reliable path.

        Parameters
        ----------
        X_atac : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_peaks), default=None
            ATAC counts of the cells to impute.
        X_rna : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_genes), default=None
            RNA counts, used only when ``X_atac`` is None (cross-modal imputation).
        peaks : array-like of str, int or bool, default=None
            Which peaks to return: names (when the model knows them), positions, or a
            boolean mask over the peaks of ``fit``. ``None`` returns every peak. The softmax
            still runs over all peaks, but only the chosen columns are ever held in memory.
        library_size : float, default=None
            Scale every cell to this total over all peaks (e.g. ``1e4``), so cells compare;
            ``None`` keeps each cell's own ATAC total.
        calibrate : bool, default=True
            Add the per-peak logit offsets ``b`` learned at fit (:attr:`atac_peak_bias_`),
            which make the decoder's per-peak totals over the training cells match the
            observed counts. ``False`` gives the method's formula,
            ``exp(s_a) * softmax(z_a @ W_a)``. On held-out cells of both bundled datasets
            calibration improves per-cell correlation and AUROC with the observed counts,
            from RNA and from ATAC (``benchmarks/eval_imputation.py``), hence the default.
        rna_map : {"ridge", "knn_code", "knn_profile"}, default="ridge"
            How an RNA code reaches the ATAC decoder (``X_rna`` only): ``"ridge"``, the
            ridge regression :attr:`rna_to_atac_`; ``"knn_code"``, the mean ATAC code of
            the ``n_neighbors`` training cells nearest in RNA latent space;
            ``"knn_profile"``, the mean of those neighbours' denoised profiles.
        n_neighbors : int, default=15
            Neighbours of the ``"knn_*"`` maps.
        n_samples : int, default=None
            Average the denoised profiles of this many codes drawn from the posterior
            (of the ATAC encoder, or of the RNA encoder before the map) instead of decoding
            the posterior mean.
        random_state : int, RandomState instance or None, default=None
            Seeds the posterior draws of ``n_samples``.
        batch : array-like of shape (n_cells,), default=None
            Each cell's sample, for a model fitted with ``batch``: its encoders read it
            (with ``batch_conditioning="encoder_decoder"``) and, without
            ``decode_batch``, each cell is decoded in its own sample.
        decode_batch : label or array-like of shape (n_cells,), default=None
            Decode "as if measured in" this sample (one label for every cell, or one per
            cell): the counterfactual accessibility that compares samples on equal terms.
            Must be a sample seen at fit.
        out : ndarray of shape (n_cells, n_selected_peaks), float32, default=None
            Write the result here, block by block, and return it: e.g. an ``np.memmap`` on
            disk for a result larger than memory. Without it, a result larger than half the
            machine's memory raises :class:`~factvae_sk.exceptions.ResultTooLargeError`
            before anything is allocated.

        Returns
        -------
        ndarray of shape (n_cells, n_selected_peaks), float32
            Dense: asking for every peak costs ``n_cells * n_peaks * 4`` bytes. ``out`` when
            given.

        Examples
        --------
        >>> from factvae_sk import FactVAE, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> hvg = data.genes.highly_variable.to_numpy()
        >>> X_rna, X_atac = data.rna[:200, hvg], data.atac[:200]
        >>> model = FactVAE(max_epochs=2, random_state=0).fit(X_rna, X_atac)
        >>> model.impute_atac(X_atac, peaks=[0, 5, 7], library_size=1e4).shape
        (200, 3)
        >>> model.impute_atac(X_rna=X_rna[:10]).shape  # cells measured by RNA alone
        (10, 27399)
        >>> model.impute_atac(X_rna=X_rna[:10], rna_map="knn_profile", peaks=[0, 1]).shape
        (10, 2)

        With samples, the accessibility of every cell as if measured in one of them:

        >>> import numpy as np
        >>> donor = np.where(np.arange(200) % 2, "a", "b")
        >>> model = FactVAE(max_epochs=2, random_state=0).fit(X_rna, X_atac, batch=donor)
        >>> model.impute_atac(X_atac, batch=donor, decode_batch="a", peaks=[0, 1]).shape
        (200, 2)
        """
        z, log_scale = self._atac_components(
            X_atac, X_rna, library_size, rna_map, n_neighbors, n_samples, random_state, batch
        )
        groups = self._decode_groups(batch, decode_batch, len(z))
        embedding = self._peak_embedding_tensor()
        bias = self._peak_logit_bias(calibrate)
        peak_index = self._peak_index(peaks)
        out = _accessibility.result_array(out, len(z), len(peak_index))
        if groups is None:
            log_offset = _accessibility.mixture_log_offset(z, log_scale, embedding, bias)
            return _accessibility.mixture_accessibility(
                z, log_offset, embedding, peak_index, bias, out=out
            )
        # Each sample's cells are decoded with that sample's peak offsets.
        if out is None:
            out = np.empty((len(z), len(peak_index)), dtype=np.float32)
        effects = self._peak_batch_effects()
        for group in np.unique(groups):
            cells = np.flatnonzero(groups == group)
            group_bias = effects[group] + (0.0 if bias is None else bias)
            log_offset = _accessibility.mixture_log_offset(
                z[cells], log_scale[cells], embedding, group_bias
            )
            out[cells] = _accessibility.mixture_accessibility(
                z[cells], log_offset, embedding, peak_index, group_bias
            )
        return out

    def _decode_groups(self, batch, decode_batch, n_cells):
        """The sample position each cell is decoded in (None for a model without samples)."""
        categories = getattr(self, "batch_categories_", None)
        if categories is None:
            if decode_batch is not None or batch is not None:
                raise ValueError("This FactVAE was fitted without batch; it has no samples.")
            return None
        if decode_batch is None:
            _batches.check_given(categories, batch, "impute_atac (without decode_batch)")
            return _batches.indices(batch, categories, n_cells)
        if np.ndim(decode_batch) == 0:
            decode_batch = [decode_batch] * n_cells
        return _batches.indices(decode_batch, categories, n_cells, "decode_batch")

    def _peak_batch_effects(self):
        """Per-sample peak logit offsets (n_samples, n_peaks), or None without samples."""
        effect = getattr(self.net_.module_.decoder_atac, "batch_effect", None)
        return None if effect is None else effect.detach().cpu().numpy()

    def _atac_components(
        self,
        X_atac,
        X_rna,
        library_size,
        rna_map="ridge",
        n_neighbors=15,
        n_samples=None,
        random_state=None,
        batch=None,
    ):
        """ATAC codes, shape (n_cells, n_components, n_latent), and log library sizes."""
        check_is_fitted(self)
        if not self.n_peaks_in_:
            raise ValueError("This FactVAE was fitted without X_atac; it has no ATAC decoder.")
        if rna_map not in _cross_modal.RNA_MAPS:
            raise ValueError(f"rna_map must be one of {_cross_modal.RNA_MAPS}; got {rna_map!r}.")
        for name, value in [("n_neighbors", n_neighbors), ("n_samples", n_samples)]:
            if value is not None and not (isinstance(value, Integral) and value >= 1):
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        rng = check_random_state(random_state)
        if X_atac is not None:
            if isinstance(X_atac, RowBlockCounts):  # on disk: checked in a pass over blocks
                X_atac.check("X_atac", n_features=self.n_peaks_in_, ensure_min_samples=1)
            else:
                X_atac = check_counts(
                    X_atac, what="X_atac", n_features=self.n_peaks_in_, ensure_min_samples=1
                )
            atac_input = self.atac_encoder_input_.transform(X_atac)
            batch_onehot = self._encoder_batch(batch, X_atac.shape[0], "impute_atac")
            dataset = self._center_inputs(
                PairedCountsDataset(atac_input=atac_input, batch=batch_onehot)
            )
            mean, logvar = self._posterior(dataset, "atac")
            z = _cross_modal.posterior_components(mean, logvar, n_samples, rng)
            log_scale = log_library_size(X_atac)
        elif X_rna is not None:
            X_rna, _ = self._validate_counts(X_rna, None, reset=False)
            if rna_map != "ridge" and not hasattr(self, "training_codes_"):
                raise ValueError(
                    f"rna_map={rna_map!r} needs training_codes_, which models fitted by "
                    "earlier versions of factvae_sk lack: refit, or use rna_map='ridge'."
                )
            batch_onehot = self._encoder_batch(batch, X_rna.shape[0], "impute_atac")
            dataset = self._dataset(X_rna, None, with_counts=False, batch_onehot=batch_onehot)
            mean, logvar = self._posterior(dataset, "rna")
            z = _cross_modal.map_rna_to_atac(
                _cross_modal.posterior_components(mean, logvar, n_samples, rng),
                rna_map,
                self.rna_to_atac_,
                getattr(self, "training_codes_", None),
                n_neighbors,
            )
            log_scale = np.full(len(z), self.atac_log_library_median_, dtype=np.float32)
        else:
            raise ValueError("Pass X_atac, or X_rna for cells measured by RNA alone.")
        if library_size is not None:
            if not (isinstance(library_size, Real) and np.isfinite(library_size)) or (
                library_size <= 0
            ):
                raise ValueError(f"library_size must be a positive number; got {library_size!r}.")
            log_scale = np.full(len(z), np.log(library_size), dtype=np.float32)
        return z, log_scale

    def _posterior(self, dataset, block):
        """Posterior means and log-variances of one encoder, as float32 arrays."""
        module = self.net_.module_
        means, logvars = [], []
        with torch.no_grad():
            for X, _ in self._inference_batches(dataset):
                mean, logvar, _ = module.encode(block, X[f"{block}_input"], X.get("batch"))
                means.append(mean.cpu().numpy())
                logvars.append(logvar.cpu().numpy())
        return np.concatenate(means), np.concatenate(logvars)

    def _peak_logit_bias(self, calibrate):
        """Per-peak logit offsets: the decoder's intercepts, plus the calibration if asked."""
        bias = self._decoder_intercepts("atac")
        if calibrate:
            bias = self.atac_peak_bias_ if bias is None else bias + self.atac_peak_bias_
        return bias

    def _reference_bias(self, bias, decode_batch):
        """``bias`` plus the peak offsets of one reference sample ``decode_batch`` (a label
        seen at fit), so that every cell is decoded as if measured there; ``bias`` as it is
        when ``decode_batch`` is None."""
        if decode_batch is None:
            return bias
        categories = getattr(self, "batch_categories_", None)
        if categories is None:
            raise ValueError("This FactVAE was fitted without batch; it has no samples.")
        if np.ndim(decode_batch) != 0:
            raise ValueError(
                "decode_batch must be one sample label here (every cell is decoded in that "
                f"reference sample); got an array of shape {np.shape(decode_batch)}."
            )
        (position,) = _batches.indices([decode_batch], categories, 1, "decode_batch")
        effect = self._peak_batch_effects()[position]
        return effect if bias is None else bias + effect

    def _peak_index(self, peaks):
        """Positions of the requested peaks (names, positions or a mask) among those of fit."""
        return _positions(peaks, self.n_peaks_in_, self.atac_feature_names_in_, "peak")

    def regulatory_scores(self, pairs=None, *, score=_link_scores.DEFAULT_SCORE, background=None):
        """Gene-peak regulatory scores: by default, how the two decoders' logits co-vary.

        These are co-variation scores only. To rank links a biologist can trust, use
        :meth:`regulatory_links` with coordinates: its default weighs distance to the TSS
        with this evidence, and beats distance alone on CRISPRi-validated pairs, which the
        co-variation scores alone do not (``benchmarks/README.md``).

        Parameters
        ----------
        pairs : sparse matrix or array-like of shape (n_genes, n_peaks), default=None
            Which gene-peak pairs to score (its non-zero pattern, e.g. a prior or a
            distance window). ``None`` scores every pair (dense: n_genes x n_peaks).
        score : {"cosine", "correlation", "log_mean_correlation"}, default="correlation"
            ``"correlation"``: Pearson correlation across the training cells of the two
            decoders' logits ``z_r . w_g`` and ``z_a . w_p``, from the codes' covariance
            (:attr:`code_covariance_`), so it weighs each latent direction by how cells
            actually spread along it and how the RNA and ATAC codes co-vary; the best
            score on the link harness (README). ``"cosine"``: cosine similarity of the
            gene's and the peak's embedding, the method's own score.
            ``"log_mean_correlation"``: the correlation on the log-softmax scale (each
            decoder's log expected fraction of a cell's counts).
        background : int, default=None
            Return each score as a z-score against this many background peaks of the same
            gene, matched for mean accessibility over the training cells (drawn with a
            fixed seed), as Signac's ``LinkPeaks`` does; needs ``pairs``.

        Returns
        -------
        scores : csr_matrix (with ``pairs``) or ndarray of shape (n_genes, n_peaks)

        See Also
        --------
        regulatory_links : the same scores as a table, for chosen genes and windows.
        factvae_sk.links.peak_gene_correlation : the pseudobulk correlation of the counts.

        Examples
        --------
        >>> from factvae_sk import FactVAE, gene_peak_prior, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> hvg = data.genes.highly_variable.to_numpy()
        >>> prior = gene_peak_prior(data.genes[hvg], data.peaks)
        >>> model = FactVAE(max_epochs=2, random_state=0)
        >>> model = model.fit(data.rna[:200, hvg], data.atac[:200], prior=prior)
        >>> model.regulatory_scores(prior, score="correlation").shape
        (2000, 27399)
        """
        if isinstance(score, str) and score in _link_model.DISTANCE_SCORES:
            raise ValueError(
                f"score={score!r} uses distance to the TSS: call regulatory_links with "
                "gene_table and peak_table (regulatory_scores has the co-variation scores)."
            )
        left, right = self._score_factors(score)
        if pairs is None:
            if background is not None:
                raise ValueError("background z-scores need pairs (e.g. the prior).")
            return left @ right.T
        rows, cols, _ = check_prior(pairs, len(left), len(right))
        values = self._pair_scores(left, right, rows, cols, background)
        return sp.csr_matrix((values, (rows, cols)), shape=(len(left), len(right)))

    def _score_factors(self, score, groups=None, group=None):
        """The gene and peak factor matrices of a score (see ``_link_scores.score_factors``); with
        ``groups``, the correlations over one group of training cells."""
        check_is_fitted(self, "feature_embeddings_")
        if "atac" not in self.feature_embeddings_:
            raise ValueError("This FactVAE was fitted without X_atac: it has no peak embeddings.")
        if not (isinstance(score, str) and score in _link_scores.SCORES):
            raise ValueError(
                f"score must be one of {_link_scores.SCORES + _link_model.DISTANCE_SCORES}; "
                f"got {score!r}."
            )
        covariance = getattr(self, "code_covariance_", None)
        if groups is not None or group is not None:
            codes = self._training_codes()
            cells = _link_model.group_cells(groups, group, len(codes))
            covariance = _link_scores.code_covariance(
                codes[cells],
                self.net_.module_.decoder_rna.feature_embedding.detach(),
                self._peak_embedding_tensor(),
            )
        if score != "cosine" and covariance is None:
            raise ValueError(
                f"score={score!r} needs code_covariance_, which models fitted before "
                "factvae_sk learned it lack: fit the model again (or use score='cosine')."
            )
        return _link_scores.score_factors(
            score,
            self.feature_embeddings_.rna.to_numpy(),
            self.feature_embeddings_.atac.to_numpy(),
            covariance,
        )

    def _pair_scores(self, left, right, rows, cols, background):
        if background is None:
            return _link_scores.score_pairs(left, right, rows, cols)
        if not (isinstance(background, Integral) and background >= 2):
            raise ValueError(f"background must be an integer >= 2; got {background!r}.")
        peaks = _link_scores.background_peaks(self.atac_peak_mean_, background)
        return _link_scores.background_zscores(left, right, rows, cols, peaks)

    def regulatory_links(
        self,
        candidates="prior",
        *,
        genes=None,
        top_k=None,
        gene_table=None,
        peak_table=None,
        window=150_000,
        score=None,
        background=None,
        groups=None,
        group=None,
        annotation=None,
    ):
        """Gene-peak regulatory links as a table: gene, peak, score and the evidence.

        With gene and peak coordinates (``gene_table`` and ``peak_table``) the default score
        is ``"logistic"``: distance to the TSS, the genomic context and the model's
        evidence together (a power-law contact, the number of expressed genes whose TSS is
        closer to the peak than the gene's, the model correlation and the embeddings'
        cosine), a small logistic model shipped with the package, chosen and fitted on
        CRISPRi-validated enhancer-gene pairs in K562 (``benchmarks/README.md``): under
        leave-chromosomes-out cross-validation on that table it ranks a little better than
        distance alone (AUPRC 0.45 and 0.44 on two fits vs 0.43, AUROC 0.924 and 0.928 vs
        0.908, and in each distance bin with enough regulated pairs; within the bootstrap
        intervals), which no co-variation score does. Without coordinates
        (or with
        ``candidates="all"``, a search that ignores position) the default is the
        co-variation score ``"correlation"`` of :meth:`regulatory_scores`;
        ``attrs["score"]`` of the result always names the score used. Only the candidate
        pairs are scored, so the genes x peaks matrix is never formed (``"all"`` scans
        every peak in blocks of genes, keeping the ``top_k`` best).

        Parameters
        ----------
        candidates : {"prior", "window", "all"} or sparse matrix of shape (n_genes, n_peaks), \
default="prior"
            Which pairs to score: the non-zero pairs of the prior given to :meth:`fit`;
            every pair whose peak lies within ``window`` bp of the gene's TSS (needs
            ``gene_table`` and ``peak_table``); every pair (needs ``top_k``, or few
            ``genes``); or the non-zero pattern of any genes x peaks matrix.
        genes : array-like of str, int or bool, default=None
            Restrict to these genes (names when the model knows them, else positions).
        top_k : int, default=None
            Keep the ``top_k`` best-scoring peaks of each gene.
        gene_table : DataFrame, default=None
            One row per gene of ``fit``, with ``chrom``, ``start``, ``end``, ``strand``
            (0-based half-open); adds a ``distance`` column (bp from the TSS, 0 when the
            peak covers it). A ``gene`` column names the genes if the model has no names.
            Chromosome names are matched to ``peak_table``'s as in
            :func:`~factvae_sk.build_gene_peak_prior` (``1`` and ``chr1``, with a warning);
            tables that share no chromosome, or candidates without any pair, are an error.
        peak_table : DataFrame or array-like of str, default=None
            One row per peak of ``fit`` with ``chrom``, ``start``, ``end``, or names like
            ``chr1:100-200``.
        window : int, default=150_000
            Half-width of the TSS window for ``candidates="window"``.
        score : {"logistic", "abc", "abc_correlation", "cosine", "correlation", \
"log_mean_correlation"}, default=None
            ``None``: ``"logistic"`` with coordinates, else ``"correlation"`` (above).
            Scores that use distance (need ``gene_table`` and ``peak_table``):
            ``"logistic"``, the probability of the shipped link model
            (``factvae_sk.analysis._link_model.LINK_MODEL``): log-odds ``b + log(5 kb / max(d,
            5 kb)) + c0 * log1p(expressed genes closer) + c1 * correlation + c2 * cosine``;
            ``"abc"``, the Activity-by-Contact score with the denoised accessibility as
            activity and a power-law contact ``5 kb / max(d, 5 kb)``, normalized over the
            gene's peaks within 1 Mb; ``"abc_correlation"``, ``abc * exp(2 * correlation)``.
            Co-variation scores (see :meth:`regulatory_scores`): ``"correlation"``,
            ``"cosine"`` (the method's own), ``"log_mean_correlation"``.
        background : int, default=None
            Z-scores against this many accessibility-matched background peaks (see
            :meth:`regulatory_scores`); co-variation scores only, not with
            ``candidates="all"``.
        groups : array-like of shape (n_training_cells,), default=None
            A label per cell the model was fitted on, in the order of fit (e.g. cell
            types); with ``group``, the links of one group: activity, expression and
            the promoter's accessibility are computed over that group's cells, and the
            table gains ``group_correlation``, the model correlation over them. The
            ``"logistic"`` score adds the peak's specificity to the group
            (``factvae_sk.analysis._link_model.GROUP_LINK_MODEL``: ``+ 0.45 * log2`` of
            its denoised accessibility over the group against all cells, 0 for a group of
            every cell), which ranks distal elements of the K562 screens better; its
            co-variation stays the one across all cells (within one cell line it is noise
            on those screens, ``benchmarks/README.md``). ``None``: all cells.
        group : label, default=None
            Which label of ``groups`` (at least 3 cells).
        annotation : DataFrame, default=None
            Every gene of the genome (``chrom``, ``start``, ``end``, ``strand``, e.g. from
            :func:`~factvae_sk.read_gtf_genes`), not only the modelled ones: the distance
            scores count from it the other genes' TSSs between a peak and its gene, and the
            expressed genes whose TSS is closer to the peak than the gene's. An optional
            boolean ``expressed`` column says which genes are expressed (e.g.
            :func:`factvae_sk.links.expressed_genes` of the counts of every gene); without
            it a modelled gene is expressed when its denoised expression over the group is
            above the average gene's share, and an annotated gene that is not modelled
            counts as expressed (matched by ``gene`` name when both tables have one, else
            by coordinates). ``None`` counts the genes of ``gene_table`` (its ``expressed``
            column, if any, else the same rule).

        Returns
        -------
        DataFrame
            One row per link, grouped by gene (in the model's gene order), best score first:
            ``gene``, ``peak``, ``score``; with coordinates ``distance`` (bp); with a
            distance score also the evidence: ``activity`` (the peak's mean denoised
            accessibility over the group, counts per million), ``expression`` (the gene's,
            CPM), ``correlation`` and ``cosine`` (with ``groups`` also
            ``group_correlation``). ``attrs["score"]`` names the score.

        Examples
        --------
        >>> from factvae_sk import FactVAE, build_gene_peak_prior, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> genes = data.genes[data.genes.highly_variable].reset_index(drop=True)
        >>> X_rna = data.rna[:200, data.genes.highly_variable.to_numpy()]
        >>> prior = build_gene_peak_prior(genes, data.peaks)
        >>> model = FactVAE(max_epochs=2, random_state=0).fit(X_rna, data.atac[:200], prior)
        >>> links = model.regulatory_links(gene_table=genes, peak_table=data.peaks)
        >>> links.attrs["score"]
        'logistic'
        >>> list(links.columns)
        ['gene', 'peak', 'score', 'distance', 'activity', 'expression', 'correlation', 'cosine']
        >>> model.regulatory_links("all", top_k=3).shape
        (6000, 3)

        The links of one cell line (activity and co-variation over its cells):

        >>> k562 = model.regulatory_links(gene_table=genes, peak_table=data.peaks,
        ...                               groups=data.cells.cell_line[:200], group="K562")
        """
        coordinates = gene_table is not None and peak_table is not None
        is_all = isinstance(candidates, str) and candidates == "all"
        if score is None:
            score = (
                _link_model.DEFAULT_DISTANCE_SCORE
                if coordinates and not is_all
                else (_link_scores.DEFAULT_SCORE)
            )
        if isinstance(score, str) and score in _link_model.DISTANCE_SCORES:
            if not coordinates:
                raise ValueError(f"score={score!r} needs gene_table and peak_table (coordinates).")
            if is_all:
                raise ValueError(
                    f"score={score!r} needs candidate pairs near each gene, not 'all': pass "
                    "candidates='window' (or 'prior', or a genes x peaks matrix)."
                )
            if background is not None:
                raise ValueError("background z-scores are for co-variation scores only.")
            gene_emb = peak_emb = None
        else:
            gene_emb, peak_emb = self._score_factors(score, groups, group)
        for table, n, what in [
            (gene_table, self.n_features_in_, "gene_table"),
            (peak_table, self.n_peaks_in_, "peak_table"),
        ]:
            if table is not None and len(table) != n:
                raise ValueError(
                    f"{what} needs one row per feature of fit ({n}); got {len(table)}."
                )
        if coordinates:
            # Checked (and chromosome names matched) once here, with one warning each.
            gene_table, peak_table = _check_tables(
                gene_table, peak_table, what=("gene_table", "peak_table")
            )
        if top_k is not None and not (isinstance(top_k, Integral) and top_k >= 1):
            raise ValueError(f"top_k must be a positive integer; got {top_k!r}.")
        gene_index = _positions(genes, self.n_features_in_, self._names("gene", gene_table), "gene")
        if isinstance(candidates, str) and candidates == "all":
            if background is not None:
                raise ValueError("background z-scores need candidate pairs, not 'all'.")
            if top_k is None:
                if len(gene_index) * len(peak_emb) > _link_scores.BLOCK_ENTRIES:
                    raise ValueError(
                        "candidates='all' without top_k would list "
                        f"{len(gene_index) * len(peak_emb)} pairs: pass top_k, or a few genes."
                    )
                top_k = len(peak_emb)
            _link_scores.check_table_size(len(gene_index) * min(top_k, len(peak_emb)))
            rows, cols, scores = _link_scores.top_k_peaks(gene_emb, peak_emb, gene_index, top_k)
            evidence = None
        else:
            pattern = self._candidate_pattern(candidates, gene_table, peak_table, window)
            rows, cols = _link_scores.pattern_pairs(pattern, gene_index)
            if len(rows) == 0:
                _no_candidates(candidates, window, genes)
            evidence = None
            if gene_emb is None:
                features = self._link_features(
                    rows, cols, gene_table, peak_table, groups, group, annotation
                )
                scores = _link_model.combine(features, score, groups is not None).astype(np.float32)
                # NaN (no distance) ranks last within its gene.
                scores = np.where(np.isnan(scores), -np.inf, scores).astype(np.float32)
                evidence = features
            else:
                scores = self._pair_scores(gene_emb, peak_emb, rows, cols, background)
            if top_k is not None:
                kept = _link_scores.top_k_among_pairs(rows, cols, scores, top_k)
                if evidence is not None:
                    index = pd.MultiIndex.from_arrays([rows, cols])
                    position = index.get_indexer(pd.MultiIndex.from_arrays(kept[:2]))
                    evidence = evidence.iloc[position].reset_index(drop=True)
                rows, cols, scores = kept
        distance = None
        if evidence is not None:  # the link features hold the pairs' distances already
            distance = evidence["distance"].to_numpy()
        elif coordinates:
            distance = _tss_distance(gene_table, peak_table, rows, cols)
        extra = None
        if evidence is not None:
            extra = {
                "activity": evidence["activity_cpm"].to_numpy(np.float32),
                "expression": evidence["expression_cpm"].to_numpy(np.float32),
                "correlation": evidence["correlation"].to_numpy(np.float32),
                "cosine": evidence["cosine"].to_numpy(np.float32),
            }
            if groups is not None:
                extra["group_correlation"] = evidence["group_correlation"].to_numpy(np.float32)
        table = _link_scores.links_table(
            rows,
            cols,
            np.where(np.isinf(scores), np.nan, scores),
            self._names("gene", gene_table),
            self._names("peak", peak_table),
            distance,
            extra,
        )
        table.attrs["score"] = score if background is None else f"{score} z-score"
        if groups is not None:
            table.attrs["group"] = group
        return table

    def link_features(
        self, rows, cols, gene_table, peak_table, groups=None, group=None, annotation=None
    ):
        """Per-pair evidence and features of the distance-aware link scores.

        Parameters
        ----------
        rows, cols : array-like of int
            The pairs: gene and peak positions among the features of ``fit``.
        gene_table, peak_table : DataFrame
            Coordinates of every gene and peak of ``fit`` (see :meth:`regulatory_links`).
        groups, group : optional
            One group of training cells (see :meth:`regulatory_links`).
        annotation : DataFrame, default=None
            Every gene of the genome (see :meth:`regulatory_links`), for ``tss_between``
            and ``expressed_closer`` (with an optional boolean ``expressed`` column).

        Returns
        -------
        DataFrame
            One row per pair: ``distance``, ``activity_cpm``, ``expression_cpm``,
            ``promoter_cpm`` and the link model's features
            (``factvae_sk.analysis._link_model.FEATURES``), the genomic context among them
            (``factvae_sk.analysis._link_context``).

        Examples
        --------
        >>> from factvae_sk import FactVAE, build_gene_peak_prior, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> genes = data.genes[data.genes.highly_variable].reset_index(drop=True)
        >>> X_rna = data.rna[:200, data.genes.highly_variable.to_numpy()]
        >>> prior = build_gene_peak_prior(genes, data.peaks)
        >>> model = FactVAE(max_epochs=2, random_state=0).fit(X_rna, data.atac[:200], prior)
        >>> model.link_features([0, 0], [5, 6], genes, data.peaks).shape[0]
        2
        """
        gene_table, peak_table = _check_tables(
            gene_table, peak_table, what=("gene_table", "peak_table")
        )
        return self._link_features(rows, cols, gene_table, peak_table, groups, group, annotation)

    def _link_features(
        self, rows, cols, gene_table, peak_table, groups=None, group=None, annotation=None
    ):
        """:meth:`link_features` of tables ``_check_tables`` returned."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        for positions, n, what in [
            (rows, self.n_features_in_, "rows"),
            (cols, self.n_peaks_in_, "cols"),
        ]:
            if len(positions) and (positions.min() < 0 or positions.max() >= n):
                raise ValueError(f"{what} must be positions in 0..{n - 1}.")
        evidence = self._link_evidence(groups, group)
        if annotation is not None:
            # Every annotated gene's TSS, its chromosomes named as the peaks' (quietly: the
            # annotation is the user's full gene table, whose naming was reported with it).
            annotation, _ = _check_tables(
                annotation, peak_table, what=("annotation", "peak_table"), checked=True
            )
        evidence["promoter"] = _link_context.promoter_activity(
            gene_table, peak_table, evidence["activity"]
        )
        # Which genes count for expressed_closer: the annotation's (or gene_table's)
        # ``expressed`` column, else the modelled genes above the average gene's share of
        # the group's expression (annotation genes not modelled count as expressed).
        expressed = _link_context.expressed_sites(
            gene_table, annotation, _link_context.above_average(evidence["expression"])
        )
        context = _link_context.genomic_context(
            gene_table, peak_table, rows, cols, annotation, expressed
        )
        near = _prior_matrix(
            gene_table, peak_table, mode="tss_window", window=_link_model.ABC_WINDOW
        ).tocoo()
        evidence["abc_total"] = _link_model.abc_denominator(
            evidence["activity"],
            near.row,
            near.col,
            _tss_distance(gene_table, peak_table, near.row, near.col),
            self.n_features_in_,
        )
        distance = _tss_distance(gene_table, peak_table, rows, cols)
        return _link_model.link_features(evidence, rows, cols, distance, context=context)

    def _training_codes(self):
        codes = getattr(self, "training_codes_", None)
        if codes is None:
            raise ValueError(
                "Distance-aware link scores and groups need training_codes_, which models "
                "fitted by earlier versions of factvae_sk lack: fit the model again, or pass "
                "score='correlation' without groups."
            )
        return codes

    def _link_evidence(self, groups, group):
        """Activity, expression and co-variation factors over one group of training cells.

        Over every cell (no ``groups``) the evidence is kept for the next call while the
        weights stay the same (torch counts each tensor's in-place changes): it costs two
        passes of every training cell through both decoders, and the main job asks twice.
        """
        codes = getattr(self, "training_codes_", None)
        if groups is not None or group is not None or codes is None:
            return self._compute_link_evidence(groups, group)
        module = self.net_.module_
        versions = [p._version for p in module.parameters()]
        memo = getattr(self, "_evidence_memo", None)
        if memo is None or memo[0] is not module or memo[1] is not codes or memo[2] != versions:
            memo = self._evidence_memo = (
                module,
                codes,
                versions,
                self._compute_link_evidence(None, None),
            )
        return dict(memo[3])

    def _compute_link_evidence(self, groups, group):
        cosine = self._score_factors("cosine")  # checks the model is fitted, with X_atac
        codes = self._training_codes()
        cells = _link_model.group_cells(groups, group, len(codes))
        # The link model's co-variation is always over every cell (code_covariance_): the
        # coupling signal is in the variation across cell states, and within one cell line
        # it is noise on the K562 CRISPRi screens (benchmarks/README.md, issue 32). The
        # group's own correlation is reported beside it.
        factors = {"correlation": self._score_factors("correlation"), "cosine": cosine}
        if groups is not None:
            factors["group_correlation"] = self._score_factors("correlation", groups, group)
        module = self.net_.module_
        return _link_model.link_evidence(
            codes,
            cells,
            (module.decoder_rna.feature_embedding.detach(), self._peak_embedding_tensor()),
            (self._decoder_intercepts("rna"), self._peak_logit_bias(True)),
            factors,
            _link_model.cell_partition(codes, groups),
        )

    def _candidate_pattern(self, candidates, gene_table, peak_table, window):
        if isinstance(candidates, str) and candidates == "prior":
            criterion = self.net_.criterion_
            if not criterion.has_prior:
                raise ValueError(
                    "This FactVAE was fitted without a prior: pass candidates='window' (with "
                    "gene_table and peak_table), 'all' with top_k, or a genes x peaks matrix."
                )
            rows, cols = criterion.prior_rows.cpu().numpy(), criterion.prior_cols.cpu().numpy()
            shape = (self.n_features_in_, self.n_peaks_in_)
            return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
        if isinstance(candidates, str) and candidates == "window":
            if gene_table is None or peak_table is None:
                raise ValueError("candidates='window' needs gene_table and peak_table.")
            return _prior_matrix(gene_table, peak_table, mode="tss_window", window=window)
        if isinstance(candidates, str):
            raise ValueError(
                f"candidates must be 'prior', 'window', 'all' or a genes x peaks matrix; got "
                f"{candidates!r}."
            )
        rows, cols, values = check_prior(candidates, self.n_features_in_, self.n_peaks_in_)
        shape = (self.n_features_in_, self.n_peaks_in_)
        return sp.csr_matrix((values, (rows, cols)), shape=shape)

    def differential_peaks(
        self,
        X_atac,
        groups,
        *,
        X_rna=None,
        reference="rest",
        peaks=None,
        method="wilcoxon",
        library_size=1e4,
        calibrate=True,
        batch=None,
        decode_batch=None,
    ):
        """Differential accessibility between groups of cells, on the augmented data.

        Each group is compared with ``reference`` (the other cells, or one named group) on
        the denoised accessibility of :meth:`impute_atac`, scaled to ``library_size``
        per cell. Peaks are processed in blocks, so memory stays bounded by one block.

        Parameters
        ----------
        X_atac : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_peaks) or None
            ATAC counts of the cells; ``None`` with ``X_rna`` imputes from RNA alone.
        groups : array-like of shape (n_cells,)
            Group label of every cell (e.g. clusters).
        X_rna : {array-like, sparse matrix, DataFrame}, default=None
            RNA counts, used only when ``X_atac`` is None.
        reference : "rest" or a label of ``groups``, default="rest"
        peaks : array-like of str, int or bool, default=None
            Peaks to test (see :meth:`impute_atac`); ``None`` tests all.
        method : {"wilcoxon", "t-test"}, default="wilcoxon"
            Mann-Whitney U (rank-sum) test or Welch's t-test, two-sided.
        library_size : float or None, default=1e4
            Per-cell total the accessibility is scaled to before testing.
        calibrate : bool, default=True
            Test the calibrated accessibility (see :meth:`impute_atac`).
        batch : array-like of shape (n_cells,), default=None
            Each cell's sample, for a model fitted with ``batch`` whose encoders need it
            (see :meth:`transform`); only checked otherwise.
        decode_batch : label, default=None
            With a model fitted with ``batch``: decode every cell in this one reference
            sample, so that the groups are compared free of the samples' peak effects (a
            group drawn mostly from one sample otherwise carries that sample's effects).
            ``None`` decodes without any sample's offsets.

        Returns
        -------
        DataFrame
            One row per (group, peak): ``group``, ``peak``, ``mean_group``,
            ``mean_reference``, ``log2_fold_change``, ``statistic``, ``pvalue`` and
            ``pvalue_adj`` (Benjamini-Hochberg within the group); sorted by group, then
            p-value.

        Examples
        --------
        >>> from factvae_sk import FactVAE, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> hvg = data.genes.highly_variable.to_numpy()
        >>> X_rna, X_atac = data.rna[:200, hvg], data.atac[:200, :3000]
        >>> lines = data.cells.cell_line.to_numpy()[:200]
        >>> model = FactVAE(max_epochs=1, n_latent=8, random_state=0).fit(X_rna, X_atac)
        >>> table = model.differential_peaks(X_atac, lines, peaks=list(range(100)))
        >>> sorted(table.group.unique()) == sorted(set(lines))
        True
        """
        if method not in ("wilcoxon", "t-test"):
            raise ValueError(f"method must be 'wilcoxon' or 't-test'; got {method!r}.")
        z, log_scale = self._atac_components(X_atac, X_rna, library_size, batch=batch)
        groups, tested = _differential.check_groups(groups, len(z), reference)
        embedding = self._peak_embedding_tensor()
        bias = self._reference_bias(self._peak_logit_bias(calibrate), decode_batch)
        log_offset = _accessibility.mixture_log_offset(z, log_scale, embedding, bias)
        in_reference = {
            label: (groups != label) if reference == "rest" else (groups == reference)
            for label in tested
        }
        results = {label: [] for label in tested}
        for block in _accessibility.peak_blocks(self._peak_index(peaks), len(z)):
            values = _accessibility.mixture_accessibility(z, log_offset, embedding, block, bias)
            for label in tested:
                stats = _differential.compare_block(
                    values, groups == label, in_reference[label], method
                )
                results[label].append((block, stats))
        return _differential.results_table(results, self._names("peak"))

    def motif_deviations(
        self,
        X_atac=None,
        X_rna=None,
        *,
        matches,
        gc=None,
        motif_names=None,
        n_background=50,
        seed=0,
        calibrate=True,
        rna_map="ridge",
        n_neighbors=15,
        n_samples=None,
        random_state=None,
        batch=None,
        decode_batch=None,
    ):
        """chromVAR motif deviations and z-scores on the augmented accessibility.

        chromVAR's bias-corrected deviations (``computeDeviations``) computed on
        :meth:`impute_atac` instead of the counts: for each cell and motif, the excess
        accessibility of the motif's peaks over the expected share, minus the same excess
        of background peak sets matched for GC content and mean accessibility, and that
        difference over the background spread (the z-score). The denoised profile is never
        zero, so cells with few fragments still get stable scores. Cells and peaks are
        processed in blocks: no cells x peaks and no dense peaks x motifs array is formed.

        Parameters
        ----------
        X_atac : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_peaks), default=None
            ATAC counts of the cells.
        X_rna : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_genes), default=None
            RNA counts, used only when ``X_atac`` is None (cells measured by RNA alone).
        matches : Bunch, sparse matrix, ndarray or DataFrame of shape (n_peaks, n_motifs)
            :func:`factvae_sk.motifs.motif_matches` of the model's peaks, or a precomputed
            peaks x motifs matrix (e.g. from motifmatchr, Signac or ArchR) with ``gc``.
        gc : array-like of shape (n_peaks,), default=None
            GC fraction of every peak; peaks with NaN (no sequence) are left out.
        motif_names : array-like of str, default=None
            Names of the motifs, overriding those carried by ``matches``.
        n_background : int, default=50
            Background peak sets (chromVAR's ``niterations``).
        seed : int, default=0
            Seed of the background peaks.
        calibrate, rna_map, n_neighbors, n_samples, random_state
            As for :meth:`impute_atac`.
        batch, decode_batch
            As for :meth:`differential_peaks`: with a model fitted with ``batch``, every
            cell decoded in one reference sample (``decode_batch``), so that the deviations
            compare cells free of the samples' peak effects.

        Returns
        -------
        Bunch
            ``deviations`` and ``z``: DataFrames of shape (n_cells, n_motifs), float32;
            ``background_peaks``: (n_used_peaks, n_background) peak positions.

        See Also
        --------
        factvae_sk.motifs.motif_deviations : the same on raw counts.
        factvae_sk.motifs.differential_motifs : test the z-scores between groups.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from factvae_sk import FactVAE, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> hvg = data.genes.highly_variable.to_numpy()
        >>> X_rna, X_atac = data.rna[:200, hvg], data.atac[:200]
        >>> model = FactVAE(max_epochs=2, random_state=0).fit(X_rna, X_atac)
        >>> rng = np.random.default_rng(0)
        >>> matches = sp.random(27399, 5, density=0.05, random_state=0, format="csr")
        >>> gc = rng.uniform(0.3, 0.7, 27399)  # from motif_matches on a real genome
        >>> result = model.motif_deviations(X_atac, matches=matches, gc=gc, n_background=5)
        >>> result.z.shape
        (200, 5)
        """
        _chromvar.check_background(n_background)
        z, log_scale = self._atac_components(
            X_atac, X_rna, None, rna_map, n_neighbors, n_samples, random_state, batch
        )
        matrix, names, gc, keep = _chromvar.check_matches(
            matches, self.n_peaks_in_, gc, motif_names
        )
        embedding = self._peak_embedding_tensor()
        bias = self._reference_bias(self._peak_logit_bias(calibrate), decode_batch)
        log_offset = _accessibility.mixture_log_offset(z, log_scale, embedding, bias)

        def blocks():
            for rows in _chromvar.cell_chunks(len(z), len(keep)):
                yield (
                    rows,
                    _accessibility.mixture_accessibility(
                        z[rows], log_offset[rows], embedding, keep, bias
                    ),
                )

        deviation, zscore, background = _chromvar.deviations(
            blocks, len(z), matrix, gc, n_background, seed
        )
        given = X_atac if X_atac is not None else X_rna
        cell_names = given.index if isinstance(given, pd.DataFrame) else None
        return _chromvar.deviations_result(deviation, zscore, background, names, cell_names, keep)


def _no_candidates(candidates, window, genes):
    """No candidate pair: an error for every gene, a warning for a chosen few."""
    which = f"candidates={candidates!r}" if isinstance(candidates, str) else "the candidates"
    if isinstance(candidates, str) and candidates == "window":
        which += f" (window={window} bp)"
    fix = "widen the window or pass other candidates"
    if genes is None:
        raise ValueError(f"No gene-peak pair among {which}: nothing to score; {fix}.")
    warn(f"No gene-peak pair among {which} for the genes asked for: the table is empty; {fix}.")


def _positions(selection, n, names, kind):
    """Positions among ``n`` features of a selection by names, positions or boolean mask.

    ``None`` selects every feature. ``names`` are the known feature names (positions when
    the model has none); unknown names and out-of-range positions are errors.
    """
    if selection is None:
        return np.arange(n)
    selection = np.asarray(selection)
    if selection.ndim != 1:
        raise ValueError(f"The {kind}s to select must be 1-D; got shape {selection.shape}.")
    if selection.dtype == bool:
        if len(selection) != n:
            raise ValueError(f"A boolean {kind} mask needs {n} entries; got {len(selection)}.")
        return np.flatnonzero(selection)
    if np.issubdtype(selection.dtype, np.integer):
        if len(selection) and (selection.min() < -n or selection.max() >= n):
            raise ValueError(f"The {kind} positions must lie in 0..{n - 1}.")
        return selection % n
    if names is None or np.issubdtype(np.asarray(names).dtype, np.integer):
        raise ValueError(
            f"The model has no {kind} names (fit it with DataFrames, or give a {kind} table): "
            f"select {kind}s by position or boolean mask."
        )
    names = pd.Index(np.asarray(names, dtype=object))
    if not names.is_unique:
        repeated = names[names.duplicated()].unique()[:3].tolist()
        raise ValueError(
            f"The {kind} names repeat (e.g. {repeated}), so selecting {kind}s by name is "
            f"ambiguous: select them by position or boolean mask, or make the names unique "
            "(e.g. AnnData's var_names_make_unique()) before fit."
        )
    index = names.get_indexer(selection.astype(object))
    if (index < 0).any():
        raise ValueError(f"Unknown {kind} name(s): {list(selection[index < 0][:5])}.")
    return index
