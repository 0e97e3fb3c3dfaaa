"""``FactVAE``: the scikit-learn estimator users fit, transform, score and pickle."""

from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.linear_model import RidgeCV
from sklearn.utils import Bunch, check_random_state, metadata_routing
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_feature_names_in,
    _num_samples,
    check_array,
    check_is_fitted,
)

from ..analysis import _accessibility, _link_scores
from ..data import _batches, _mosaic
from ..data._preprocessing import ATACEncoderInput, RNAEncoderInput
from ..data._row_blocks import RowBlockCounts
from ..data._validation import check_prior, warn_empty_prior
from ..exceptions import NonFiniteLossError
from ..train import _distributed, _holdout
from ..utils._device import cuda_devices, resolve_device
from ._analysis_mixin import FactVAEAnalysisMixin
from ._cell_inputs import CellInputsMixin, _atac_or_none
from ._training_setup import TrainingSetupMixin


def _atac_arg(X_atac, y):
    """The ATAC counts, given positionally, as ``X_atac=`` or as ``y=``.

    scikit-learn's tools pass the second argument positionally, but some callers (its own
    estimator checks among them) name it ``y``.
    """
    if y is None:
        return X_atac
    if X_atac is not None:
        raise TypeError("Pass the ATAC counts once: as X_atac or as y, not both.")
    return y


def _check_cell_weights(sample_weight, n_cells):
    weights = check_array(
        sample_weight, ensure_2d=False, dtype=np.float64, input_name="sample_weight"
    )
    if weights.shape != (n_cells,):
        raise ValueError(
            f"sample_weight must have shape ({n_cells},), one weight per cell; got {weights.shape}."
        )
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("sample_weight must be non-negative with a positive sum.")
    return weights


class FactVAE(
    FactVAEAnalysisMixin, CellInputsMixin, TrainingSetupMixin, TransformerMixin, BaseEstimator
):
    """Factorized variational autoencoder for paired single-cell RNA + ATAC counts.

    Each modality has an MLP encoder to a Gaussian latent code and a *factorized* decoder:
    every gene (peak) has a feature embedding in latent space, and a cell's expected counts
    are ``exp(log library) * softmax(z @ W)``. Gene and peak embeddings are tied to known
    regulation through an optional gene x peak prior, and the ATAC encoder is additionally
    distilled towards the RNA encoder's cell-cell similarity structure. The torch modules
    are trained with skorch. :data:`factvae_sk.PAPER_SETTINGS` holds the published
    method's settings; the defaults differ from it in three measured numbers (see Notes).

    Without ``X_atac`` the estimator fits the RNA half alone (a factorized RNA VAE). Without
    a ``prior`` the prior term is off. Counts may be numpy arrays, scipy sparse matrices or
    pandas DataFrames; sparse inputs stay sparse (one batch at a time is densified).

    Parameters
    ----------
    n_latent : int, default=50
        Size of the latent code (and of every gene and peak embedding).
    rna_hidden_sizes : tuple of int, default=(256,)
        Hidden layers of the RNA encoder. The method's is ``(512, 256)``, sized for its 100
        input components: with 20, one layer of 256 (the ATAC encoder's shape) clusters the
        kidney's cells better (RNA KMeans / Leiden ARI 0.41 to 0.43 / 0.48 to 0.49 against
        0.33 to 0.34 / 0.43 to 0.45 at 100 epochs, 3 seeds on each of two machines) and
        keeps the cell lines' results (benchmarks page, "Cell embeddings against PCA and
        LSI").
    atac_hidden_sizes : tuple of int, default=(256,)
        Hidden layers of the ATAC encoder.
    dropout : float, default=0.2
        Dropout after each hidden layer of both encoders.
    rna_likelihood, atac_likelihood : {"zinb", "nb"}, default="zinb"
        Count likelihood of each modality.
    atac_intercepts : bool, default=False
        Give the ATAC decoder a learned per-peak intercept ``b``, initialized at each
        peak's centred log share of the training counts:
        ``mu = exp(s_a) * softmax(z_a @ W_a + b)``. Not part of the method (False
        reproduces it); the peak embeddings ``W_a`` then describe deviations from each
        peak's baseline accessibility.
    rna_nll_weight : float, default=0.1
    rna_kl_weight : float, default=0.001
    atac_nll_weight : float, default=0.002
    atac_kl_weight : float, default=0.001
    prior_weight : float, default=1.0
        Weights of the main objective
        ``w_nll_r NLL_r + w_kl_r KL_r + w_nll_a NLL_a + w_kl_a KL_a + w_prior exp(L_prior)``.
    lr : float, default=1e-3
        Learning rate of the main Adam optimizer (all parameters).
    lr_distillation : float, default=1e-3
        Learning rate of the distillation Adam optimizer (ATAC encoder only); 0 turns
        distillation off. The method's is 5e-4: at the main step's rate the ATAC code
        follows the RNA code more closely and clusters the cell lines more steadily
        (benchmarks page, "Cell embeddings against PCA and LSI").
    lr_decay : float, default=0.995
        Both learning rates are multiplied by this after every epoch.
    max_epochs : int or "auto", default="auto"
        Training epochs. "auto": as many as give 3,700 gradient steps, at most the method's
        300 (``PAPER_SETTINGS`` has 300). An epoch of ``n`` training cells has
        ``n // batch_size`` steps, so up to 1,578 cells train the method's 300 epochs (the
        cell lines, 1047 cells: 8 steps an epoch), the kidney (4749 cells) 100, a 10x
        Multiome experiment of 12,000 cells 40 (93 steps an epoch), as scvi-tools caps
        its epochs by the number of cells. On the kidney 100 epochs cluster at least as
        well as 300 (benchmarks page, "Training length"). With ``warm_start``, the epochs
        added for the cells given.
    batch_size : int, default=128
        Cells per batch; the incomplete last batch of an epoch is dropped (capped at the
        number of cells, so small data still trains).
    rna_n_components : int, default=20
        Principal components of the RNA encoder input (normalize, log1p, scale, PCA). The
        method's is 100: 20 cluster the kidney's cells better (RNA KMeans / Leiden ARI about
        0.33 / 0.44 against 0.30 / 0.34 at 100 epochs, 3 seeds) and keep the cell lines'
        results (benchmarks page, "Cell embeddings against PCA and LSI").
    atac_n_components : int, default=100
        LSI components of the ATAC encoder input (TF-IDF, truncated SVD, per-cell scaling).
    target_sum : float, default=1e4
        Counts per cell after normalization, for the RNA encoder input.
    embedding : {"rna", "atac", "joint"}, default="rna"
        What :meth:`transform` returns: the RNA posterior mean, the ATAC posterior mean
        (needs ``X_atac``), or both side by side.
    random_state : int, RandomState instance or None, default=None
        Seeds weights, shuffling, sampling and the SVDs. The same value on the same machine
        gives the same model. torch's global random state is left untouched.
    device : str, default="auto"
        torch device for training and inference; "auto" picks CUDA when available.
    verbose : int, default=0
        0: silent; 1: about ten progress lines on stderr; 2: skorch's per-epoch table.
    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks for the skorch net (e.g. checkpoints).
    warm_start : bool, default=False
        When True and the model is fitted, :meth:`fit` continues training it for
        ``max_epochs`` more epochs instead of starting afresh (see Notes).
    validation_fraction : float in (0, 1) or None, default=None
        Fraction of the cells given to :meth:`fit` held out of the gradient steps (a
        uniform random split seeded by ``random_state``); their ELBO is recorded after
        every epoch in ``history_`` as ``valid_elbo`` (see Notes). ``None``: every cell
        trains, unless ``early_stopping`` asks for a split.
    early_stopping : bool, default=False
        Stop training when the validation score (``early_stopping_metric``) has not
        improved for ``n_iter_no_change`` epochs, and keep the weights of its best epoch. Uses
        ``validation_fraction``, or 0.1 when that is ``None`` (as scikit-learn's MLP does).
    n_iter_no_change : int, default=10
        Epochs without improvement of the validation score before early stopping ends
        training.
    early_stopping_metric : {"loss", "elbo"}, default="loss"
        What early stopping watches on the validation cells: "loss", the training
        objective with its loss weights (skorch's ``valid_loss``); "elbo", the unweighted
        mean ELBO (``valid_elbo``, what :meth:`score` reports). The objective weighs the KL
        terms at a hundredth of the RNA likelihood, and on sparse data (the bundled kidney)
        the growing RNA KL makes the ELBO peak within a few epochs while the held-out
        likelihoods still improve: "loss" stops where the model stops improving at what
        it is trained for (see the README's measurements).
    precision : {"32", "bf16"}, default="32"
        Arithmetic of the training steps. "32": float32 throughout (the method). "bf16": the
        encoders and the decoders' products run under ``torch.autocast`` in bfloat16
        (faster on GPUs and on CPUs with AVX512-BF16/AMX); the likelihood sums, the KL and
        the distillation's similarity matrices stay float32, and so do the weights, the
        optimizers and inference (``transform``, ``score``, ``impute_atac``).
    distributed : bool, default=False
        Train data-parallel on ``torch.distributed`` through Hugging Face ``accelerate``
        (``pip install "factvae_sk[accelerate]"``): launch the same script with ``torchrun
        --nproc_per_node N`` or ``accelerate launch``, each process given the same cells.
        Each batch of ``batch_size`` cells is split between the processes (``batch_size``
        must be a multiple of their number) and every process ends with the model a
        one-process fit with the same batches gives (see Notes). Without a launch it is a
        one-process fit.
    batch_conditioning : {"decoder", "encoder_decoder"}, default="decoder"
        How a ``batch`` given to :meth:`fit` enters the model (no effect without it): both
        decoders always get a per-sample logit offset for every gene and peak (a
        multiplicative sample effect on each feature), as scVI's default; with
        "encoder_decoder" the one-hot sample is also appended to both encoders' inputs
        (scVI's ``encode_covariates=True``). "decoder" mixed the samples better at the
        same cell-type ARI on semi-synthetic samples (README, "Several samples"), hence the
        default. Either way :meth:`transform` integrates the samples after training (see
        ``batch`` in :meth:`fit`) and needs each cell's ``batch``.
    batch_dispersion : bool, default=False
        With ``batch``: each sample also gets its own per-feature offsets on the
        dispersion and zero-inflation logits of both decoders (sample-specific noise,
        scVI's ``dispersion="gene-batch"``). The library size is always each cell's own
        observed one, so depth differences between samples need no term.
    batch_center_inputs : bool or "harmony", default=False
        With ``batch``, correct each cell's encoder inputs (RNA PCA, ATAC LSI) for its
        sample, learned at fit. True subtracts the sample's mean input (minus the mean over
        samples; ``batch_input_offsets_``): every sample enters the encoders centred on the
        same point, whatever its cell-type composition. "harmony" fits Harmony on each
        modality's inputs (``batch_input_harmony_``): soft clusters that every sample
        shares, each with its own per-sample offsets, so samples of different composition
        are aligned type by type; every cell (training or new) is mapped alone. Either
        needs ``batch`` in :meth:`transform` whatever the conditioning.
    batch_harmony_theta : float, default=2.0
        Harmony's diversity penalty (``batch_center_inputs="harmony"`` only): how hard each
        soft cluster is pushed to hold every sample in its share of the cells. 2 is
        Harmony's default; 0 keeps plain soft clusters, which mixes less but merged fewer
        cell types where the samples' compositions differ (README, "Several samples").
    batch_mmd_weight : float, default=0.0
        With ``batch``: weight of a penalty that makes the cell codes shed the sample, the
        Gaussian-kernel MMD (three bandwidths around the median distance) between each
        sample's posterior means and the other samples', per training batch, on the RNA and
        the ATAC codes (logged in ``history_`` as ``mmd``), as in trVAE. 0 (the method)
        leaves training exactly as without it; no effect without ``batch``.
    missing_code : {"transport", "neighbors"}, default="transport"
        How :meth:`transform` codes the modality a cell lacks (``rna_observed`` /
        ``atac_observed``) from the one it has, by a map learned on the paired training
        cells: "transport", a least-squares linear map whose outputs are then given the
        real codes' covariance (Gaussian optimal transport), so the cells sit among the
        measured ones; "neighbors", the mean code of the 15 nearest paired cells (tight
        clumps). "transport" embedded the cells with one modality better on both bundled
        datasets (README, "Several samples"). No effect on training or on paired cells.

    Attributes
    ----------
    n_features_in_ : int
        Number of genes seen in ``fit``.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Gene names, when ``X_rna`` was a DataFrame with string columns.
    n_peaks_in_ : int
        Number of peaks seen in ``fit`` (0 when fitted on RNA alone).
    atac_feature_names_in_ : ndarray of shape (``n_peaks_in_``,) or None
        Peak names, when ``X_atac`` was a DataFrame.
    batch_categories_ : ndarray or None
        The distinct ``batch`` labels seen in ``fit`` (sorted); ``None`` when fitted
        without ``batch``.
    batch_input_offsets_ : dict or None
        With ``batch_center_inputs``: ``{"rna": offsets, "atac": offsets}``, each of shape
        (n_samples, n_components), subtracted from the encoder inputs by sample.
    batch_input_harmony_ : dict or None
        With ``batch_center_inputs="harmony"``: ``{"rna": state, "atac": state}``, each the
        Harmony state of :func:`~factvae_sk.data._harmony.fit_harmony` (centroids (K,
        n_components), per-cluster sample offsets (K, n_samples, n_components), kernel
        widths) with which :func:`~factvae_sk.data._harmony.harmony_correct` maps each cell.
    batch_code_harmony_ : dict or None
        After a fit with ``batch``: ``{"rna": state, "atac": state}``, the Harmony state
        (as ``batch_input_harmony_``) fitted on the training cells' posterior means of each
        modality by sample, through which :meth:`transform` maps every cell; ``None``
        without ``batch``.
    feature_embeddings_ : Bunch of DataFrames
        ``rna``: gene embeddings (n_genes, n_latent); ``atac``: peak embeddings
        (n_peaks, n_latent), absent without ATAC. Indexed by gene / peak names when the
        counts were DataFrames (positions otherwise); columns ``latent0`` ...
    rna_to_atac_ : sklearn.linear_model.RidgeCV
        Map from RNA codes to ATAC codes, fitted on the paired training cells; used by
        :meth:`impute_atac` for cells measured by RNA alone (absent without ATAC).
    atac_log_library_median_ : float
        Median log ATAC total of the training cells: the library size given to cells
        imputed from RNA alone.
    code_covariance_ : ndarray of shape (2 * n_latent + 2, 2 * n_latent + 2)
        Covariance over the training cells of ``(z_r, n_r, z_a, n_a)``: the posterior means
        of both codes, each followed by its decoder's log-softmax normalizer
        ``n = -logsumexp(z @ W)``. The model-based gene-peak scores
        (``regulatory_scores(score="correlation")`` and ``"log_mean_correlation"``) are
        read from it without forming a cells x features array.
    atac_peak_mean_ : ndarray of shape (n_peaks,)
        Mean ATAC count of each peak over the training cells (matches background peaks in
        ``regulatory_scores(background=...)``).
    atac_peak_bias_ : ndarray of shape (n_peaks,)
        Per-peak logit offsets used by ``impute_atac(calibrate=True)``:
        ``log((observed + 1) / (predicted + 1))`` of each peak's total over the training
        cells.
    training_codes_ : ndarray of shape (n_training_cells, 2 * n_latent)
        Posterior means of the RNA codes (first ``n_latent`` columns) and ATAC codes of the
        paired training cells; the neighbour maps of ``impute_atac(X_rna=...)`` search them.
    rna_encoder_input_, atac_encoder_input_ : fitted preprocessing transformers
    net_ : FactVAENet
        The trained skorch net; ``net_.history`` holds per-epoch loss terms.
    module_ : FactVAEModule
        The trained torch module (``net_.module_``).
    history_ : skorch History
        Per-epoch loss terms and learning rates (``net_.history``); with a validation
        split also ``valid_loss`` (the weighted training objective) and ``valid_elbo``
        (the unweighted mean ELBO, as :meth:`score` computes it) of the held-out cells,
        and its terms (``valid_nll_rna``, ``valid_kl_rna``, ``valid_nll_atac``,
        ``valid_kl_atac``: per-cell means, lower is better).
    validation_indices_ : ndarray of shape (n_validation_cells,) or None
        Positions, among the cells of the last :meth:`fit`, of the cells held out for
        validation; ``None`` without a validation split.

    See Also
    --------
    factvae_sk.gene_peak_prior : build the gene x peak prior from coordinates.
    impute_atac, regulatory_links, differential_peaks : the downstream outputs.
    factvae_sk.GenePeakPrior : wrap the prior so cross-validation never splits it.

    Notes
    -----
    **The published method.** :data:`factvae_sk.PAPER_SETTINGS` holds every number of the
    method's reference code (encoder inputs, layer sizes, likelihoods, objective weights,
    learning rates, schedule). ``FactVAE(**PAPER_SETTINGS)`` is the published method, bit
    for bit; further arguments override it (``FactVAE(**{**PAPER_SETTINGS,
    "max_epochs": 100})``). The defaults differ from it in three numbers, chosen by
    measurement on both bundled datasets: 20 RNA principal components instead of 100, an
    RNA encoder of one hidden layer of 256 units instead of 512-256 (sized for the 20
    inputs), and the distillation step's learning rate 1e-3 instead of 5e-4.

    **scikit-learn tools.** ``X_rna`` is scikit-learn's ``X`` and ``X_atac`` its ``y``
    (also accepted as ``y=``): Pipeline, GridSearchCV and ``cross_val_score`` split both
    by cells, and :meth:`score` (mean ELBO, higher is better) is what a search maximizes
    when no ``scoring`` is given. A 1-D ``y`` (class labels that a Pipeline hands to every
    step, e.g. in front of a classifier) is ignored and the RNA half is fitted alone.
    ``cross_val_score`` and ``cross_validate`` (not GridSearchCV) refuse a sparse ``y``
    in scikit-learn's own parameter check: give them a dense ``X_atac``, or call them
    inside ``sklearn.config_context(skip_parameter_validation=True)``.

    The prior is a fit parameter: ``pipe.fit(X_rna, X_atac, factvae__prior=GenePeakPrior(B))``;
    with ``sklearn.set_config(enable_metadata_routing=True)``, request it with
    ``FactVAE().set_fit_request(prior=True)`` and pass ``prior=GenePeakPrior(B)`` to any
    meta-estimator. Search tools cut every fit parameter with one row per cell, so a bare
    prior with as many genes as cells would be cut too: :class:`GenePeakPrior` has no rows
    to cut, and a bare prior that arrives cut is refused with an error saying so.

    **Pickling and devices.** A fitted model pickles with ``pickle`` or ``joblib`` and
    transforms identically after loading, in another process too. Its torch state is
    saved by skorch, which maps tensors saved on a GPU to the CPU when no GPU is present
    (with a ``DeviceWarning``); inference runs on the device the loaded module is on,
    whatever ``device`` says. To train again on the CPU, ``set_params(device="cpu")``.

    **Continuing training.** With ``warm_start=True`` a second :meth:`fit` on a fitted
    model trains the same network ``max_epochs`` more epochs, on the cells it is given
    (same genes and peaks as before): the fitted preprocessing (PCA, LSI) is kept, not
    refitted; the optimizers keep their state and the learning rates continue their decay;
    torch's random stream continues where it stopped, so 4 epochs then 4 more give the same
    model as 8 epochs at once; the history is appended to. The loss weights and the
    ``prior`` of the new call are used. Changes to the architecture, preprocessing or
    ``lr`` parameters take effect only in a cold fit (``warm_start=False``).

    **Validation and early stopping.** With ``validation_fraction`` (or
    ``early_stopping``) the net trains on the other cells, and after every epoch the
    held-out cells' mean ELBO (posterior-mean codes, unweighted likelihood: what
    :meth:`score` returns on them) is recorded as ``valid_elbo``, beside skorch's
    ``valid_loss`` (the weighted objective). Early stopping (skorch's ``EarlyStopping``)
    monitors ``valid_loss``, or ``valid_elbo`` with ``early_stopping_metric="elbo"``, and
    restores the module's weights of the best epoch, also when training runs to
    ``max_epochs``; the optimizers keep their last state. The validation cells are held
    out of the gradient steps only: the encoder inputs (PCA, LSI) are fitted on all the
    cells given to :meth:`fit`, as a scaler in front of scikit-learn's MLP would be, and so
    are the post-hoc fits that use no gradient, the RNA-to-ATAC map ``rna_to_atac_`` and
    the peak calibration ``atac_peak_bias_``. A warm start splits the cells it is given
    anew (the same ``random_state`` and cells give the same split). With both options off
    (the default), training is exactly the method's.

    **Errors and interruptions.** If a loss term becomes NaN or infinite, training stops
    at the end of that epoch with :class:`~factvae_sk.exceptions.NonFiniteLossError`
    naming the epoch and the term(s), and the estimator is left unfitted (a warm-start
    fit that fails this way also discards the earlier model). Ctrl-C
    (``KeyboardInterrupt``) during ``fit`` stops training but keeps the model as it is,
    at the end of the last completed epoch when the interruption came between epochs,
    fully usable, with ``history_`` up to there (skorch's semantics).

    **Saving without pickle.** Pickle and joblib files execute code when they are loaded:
    load them from trusted sources only. :meth:`save` writes a weights-only ``.npz`` file
    (arrays and JSON) that :meth:`load` reads without unpickling anything.

    **Parallel and distributed search.** ``GridSearchCV(..., n_jobs=k)`` fits in worker
    processes. joblib's default (loky) workers get ``OMP_NUM_THREADS=cpu_count // k``
    unless it is set, and torch takes its thread count from it, so the workers do not
    oversubscribe the cores. The same code runs on a Dask cluster (``pip install
    "factvae_sk[distributed]"``): connect a ``dask.distributed.Client``, then call ``fit``
    inside ``joblib.parallel_config(backend="dask")``. Dask's nanny starts workers with
    ``OMP_NUM_THREADS=1`` (setting ``distributed.nanny.pre-spawn-environ``), so torch
    trains on one thread per worker process.

    **Past one GPU.** A fit trains on one device; a search with one GPU per Dask worker is
    the simple way to use several. One fit spreads over several GPUs, nodes or CPU processes
    with ``distributed=True``, through skorch's :class:`skorch.hf.AccelerateMixin` and Hugging
    Face ``accelerate``.

    **Data-parallel training.** ``distributed=True`` does the above in :meth:`fit`. The
    preprocessing (PCA, LSI) and the seed are made on rank 0 and sent to the other
    processes; each process trains on its slice of every shuffled batch; the main step's
    gradients are averaged by DistributedDataParallel; the distillation step compares the
    similarity structures of the whole gathered batch (what one process would see) and sums
    the ATAC encoder's gradients over the processes; the logged terms are averaged. After
    training each process holds an ordinary fitted FactVAE (it pickles, saves and
    transforms); let rank 0 save it. Each process draws its own sampling and dropout noise,
    so a fit on N processes matches a one-process fit exactly only where training draws no
    noise; otherwise it is the same training with other random draws. ``validation_fraction``,
    ``early_stopping`` and ``warm_start`` are not supported with it.

    Examples
    --------
    >>> from factvae_sk import FactVAE, gene_peak_prior, load_snare_cellline
    >>> data = load_snare_cellline()
    >>> hvg = data.genes.highly_variable.to_numpy()
    >>> X_rna, X_atac = data.rna[:200, hvg], data.atac[:200]  # 200 cells, for a quick look
    >>> prior = gene_peak_prior(data.genes[hvg], data.peaks)
    >>> model = FactVAE(max_epochs=2, random_state=0)
    >>> model.fit_transform(X_rna, X_atac, prior=prior).shape
    (200, 50)
    >>> model.set_params(embedding="joint").transform(X_rna, X_atac).shape
    (200, 100)
    >>> model.feature_embeddings_.atac.shape
    (27399, 50)

    The published method, one step away:

    >>> from factvae_sk import PAPER_SETTINGS
    >>> paper = FactVAE(**PAPER_SETTINGS)
    >>> paper.rna_n_components, FactVAE().rna_n_components
    (100, 20)
    """

    _parameter_constraints: dict = {
        "n_latent": [Interval(Integral, 1, None, closed="left")],
        "rna_hidden_sizes": [tuple, list],
        "atac_hidden_sizes": [tuple, list],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "rna_likelihood": [StrOptions({"zinb", "nb"})],
        "atac_likelihood": [StrOptions({"zinb", "nb"})],
        "atac_intercepts": ["boolean"],
        "rna_nll_weight": [Interval(Real, 0, None, closed="left")],
        "rna_kl_weight": [Interval(Real, 0, None, closed="left")],
        "atac_nll_weight": [Interval(Real, 0, None, closed="left")],
        "atac_kl_weight": [Interval(Real, 0, None, closed="left")],
        "prior_weight": [Interval(Real, 0, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "lr_distillation": [Interval(Real, 0, None, closed="left")],
        "lr_decay": [Interval(Real, 0, 1, closed="right")],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "rna_n_components": [Interval(Integral, 1, None, closed="left")],
        "atac_n_components": [Interval(Integral, 1, None, closed="left")],
        "target_sum": [Interval(Real, 0, None, closed="neither")],
        "embedding": [StrOptions({"rna", "atac", "joint"})],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "early_stopping": ["boolean"],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping_metric": [StrOptions({"elbo", "loss"})],
        "precision": [StrOptions({"32", "bf16"})],
        "distributed": ["boolean"],
        "batch_conditioning": [StrOptions({"encoder_decoder", "decoder"})],
        "batch_dispersion": ["boolean"],
        "batch_center_inputs": ["boolean", StrOptions({"harmony"})],
        "batch_harmony_theta": [Interval(Real, 0, None, closed="left")],
        "batch_mmd_weight": [Interval(Real, 0, None, closed="left")],
        "missing_code": [StrOptions({"transport", "neighbors"})],
    }

    # X_rna and X_atac are the data (scikit-learn's X and y), not metadata to route: only
    # `prior` is requestable, through `set_fit_request(prior=True)`.
    __metadata_request__fit = __metadata_request__transform = __metadata_request__score = {
        "X_rna": metadata_routing.UNUSED,
        "X_atac": metadata_routing.UNUSED,
    }

    def __init__(
        self,
        n_latent=50,
        *,
        rna_hidden_sizes=(256,),
        atac_hidden_sizes=(256,),
        dropout=0.2,
        rna_likelihood="zinb",
        atac_likelihood="zinb",
        atac_intercepts=False,
        rna_nll_weight=0.1,
        rna_kl_weight=0.001,
        atac_nll_weight=0.002,
        atac_kl_weight=0.001,
        prior_weight=1.0,
        lr=1e-3,
        lr_distillation=1e-3,
        lr_decay=0.995,
        max_epochs="auto",
        batch_size=128,
        rna_n_components=20,
        atac_n_components=100,
        target_sum=1e4,
        embedding="rna",
        random_state=None,
        device="auto",
        verbose=0,
        callbacks=None,
        warm_start=False,
        validation_fraction=None,
        early_stopping=False,
        n_iter_no_change=10,
        early_stopping_metric="loss",
        precision="32",
        distributed=False,
        batch_conditioning="decoder",
        batch_dispersion=False,
        batch_center_inputs=False,
        batch_harmony_theta=2.0,
        batch_mmd_weight=0.0,
        missing_code="transport",
    ):
        self.n_latent = n_latent
        self.rna_hidden_sizes = rna_hidden_sizes
        self.atac_hidden_sizes = atac_hidden_sizes
        self.dropout = dropout
        self.rna_likelihood = rna_likelihood
        self.atac_likelihood = atac_likelihood
        self.atac_intercepts = atac_intercepts
        self.rna_nll_weight = rna_nll_weight
        self.rna_kl_weight = rna_kl_weight
        self.atac_nll_weight = atac_nll_weight
        self.atac_kl_weight = atac_kl_weight
        self.prior_weight = prior_weight
        self.lr = lr
        self.lr_distillation = lr_distillation
        self.lr_decay = lr_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.rna_n_components = rna_n_components
        self.atac_n_components = atac_n_components
        self.target_sum = target_sum
        self.embedding = embedding
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping_metric = early_stopping_metric
        self.precision = precision
        self.distributed = distributed
        self.batch_conditioning = batch_conditioning
        self.batch_dispersion = batch_dispersion
        self.batch_center_inputs = batch_center_inputs
        self.batch_harmony_theta = batch_harmony_theta
        self.batch_mmd_weight = batch_mmd_weight
        self.missing_code = missing_code

    # ------------------------------------------------------------------ fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self,
        X_rna,
        X_atac=None,
        prior=None,
        *,
        y=None,
        batch=None,
        rna_observed=None,
        atac_observed=None,
    ):
        """Fit the preprocessing and train the model.

        Parameters
        ----------
        X_rna : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_genes)
            Raw RNA counts. Counts on disk (:func:`factvae_sk.anndata.backed_counts`)
            are checked and preprocessed in passes over blocks of rows and read one
            training batch at a time.
        X_atac : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_peaks), default=None
            Raw ATAC counts of the same cells (also on disk, as ``X_rna``); ``None`` fits
            the RNA half alone. Sits in
            scikit-learn's ``y`` slot, so Pipeline and cross-validation split it by cells.
            A 1-D array (class labels a Pipeline passes to every step) is ignored.
        prior : {array-like, sparse matrix, GenePeakPrior} of shape (n_genes, n_peaks), default=None
            Known gene-peak links (see :func:`factvae_sk.gene_peak_prior`). Only its
            non-zero entries are used. ``None`` turns the prior term off (so does a prior
            without a non-zero entry, with a :class:`~factvae_sk.exceptions.FactVAEWarning`,
            since it usually means tables that did not match). In
            cross-validation pass it wrapped as ``GenePeakPrior(prior)``: search tools
            split any fit parameter with one row per cell, and a prior that arrives split
            is refused.
        y : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_peaks), default=None
            Another name for ``X_atac`` (scikit-learn's name for the second argument).
        batch : array-like of shape (n_cells,), default=None
            The sample (donor, run, time point...) of each cell: labels of any hashable
            type. The decoders are then conditioned on it (``batch_conditioning``), and
            after training Harmony is fitted on the cells' codes by sample
            (``batch_code_harmony_``), so that :meth:`transform` returns an integrated
            embedding in which the samples mix and the cell types stay apart (README,
            "Several samples"); :meth:`transform`, :meth:`score` and :meth:`impute_atac`
            then take the cells' ``batch`` too. Routed per cell like ``sample_weight``.
            ``None``: the method exactly as without this option.
        rna_observed, atac_observed : array-like of bool, shape (n_cells,), default=None
            For data where some cells were measured by one modality only (mosaic): whether
            each cell's row of ``X_rna`` / ``X_atac`` is a measurement (``None``: every
            row is). The other rows are never read (zeros will do) and may be empty. Cells
            with one modality train that modality's encoder and decoder; only cells with
            both feed the distillation step and the cross-modal maps. Routed per cell like
            ``batch``.

        Returns
        -------
        self : FactVAE

        Examples
        --------
        >>> import numpy as np
        >>> from factvae_sk import FactVAE, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> hvg = data.genes.highly_variable.to_numpy()
        >>> X_rna, X_atac = data.rna[:200, hvg], data.atac[:200]
        >>> donor = np.where(np.arange(200) % 2, "donor_a", "donor_b")
        >>> model = FactVAE(max_epochs=2, random_state=0).fit(X_rna, X_atac, batch=donor)
        >>> model.batch_categories_
        array(['donor_a', 'donor_b'], dtype='<U7')
        >>> model.transform(X_rna, batch=donor).shape
        (200, 50)
        """
        X_atac = _atac_arg(X_atac, y)
        self._check_hidden_sizes()
        device = resolve_device(self.device)
        continuing = self.warm_start and hasattr(self, "net_")
        observed = _mosaic.check_observed(
            rna_observed, atac_observed, _num_samples(X_rna), _atac_or_none(X_atac) is not None
        )
        X_rna, X_atac = self._validate_counts(
            X_rna, X_atac, reset=not continuing, observed=observed
        )
        if X_atac is None and self.embedding != "rna":
            raise ValueError(f"embedding={self.embedding!r} needs X_atac at fit.")
        if prior is not None and X_atac is None:
            raise ValueError("A prior links genes to peaks: it needs X_atac.")
        prior_entries = (
            None
            if prior is None
            else check_prior(prior, X_rna.shape[1], X_atac.shape[1], n_cells=X_rna.shape[0])
        )
        if prior_entries is not None and len(prior_entries[0]) == 0:
            warn_empty_prior()
        accelerator = None
        if self.distributed:
            # Joins the launch's process group (a one-process run outside a launch).
            accelerator = _distributed.make_accelerator(device)
            given = {
                "batch": batch is not None,
                "rna_observed / atac_observed": observed is not None,
                "counts read from disk (backed_counts)": any(
                    isinstance(X, RowBlockCounts) for X in (X_rna, X_atac)
                ),
            }
            _distributed.check_settings(
                self, X_rna.shape[0], [name for name, value in given.items() if value]
            )
            _distributed.check_same_data(X_rna, X_atac)
        if continuing:
            batch_onehot = self._batch_onehot(batch, X_rna.shape[0], "fit with warm_start")
            dataset = self._continue_training(X_rna, X_atac, prior_entries, batch_onehot, observed)
            return self._finish_fit(dataset)

        self.batch_categories_ = (
            None if batch is None else _batches.fit_categories(batch, X_rna.shape[0])
        )
        self.batch_input_offsets_ = self.batch_input_harmony_ = None
        batch_onehot = self._batch_onehot(batch, X_rna.shape[0], "fit")

        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)

        def encoder_inputs():
            # Each modality's encoder input is fitted on the cells that have it.
            rna = RNAEncoderInput(
                self.rna_n_components, target_sum=self.target_sum, random_state=seed
            ).fit(X_rna if observed is None else X_rna[observed["rna"]])
            if X_atac is None:
                return rna, None
            atac = ATACEncoderInput(self.atac_n_components, random_state=seed).fit(
                X_atac if observed is None else X_atac[observed["atac"]]
            )
            return rna, atac

        if self.distributed:
            # One seed and one preprocessing for all the processes, made on rank 0.
            seed = _distributed.broadcast_from_main(lambda: seed)
            encoder_inputs = _distributed.broadcast_from_main(encoder_inputs)
        else:
            encoder_inputs = encoder_inputs()
        self.rna_encoder_input_, self.atac_encoder_input_ = encoder_inputs
        dataset = self._raw_dataset(
            X_rna, X_atac, with_counts=True, batch_onehot=batch_onehot, observed=observed
        )
        if batch is not None and self.batch_center_inputs:
            # Learned from the encoder inputs just computed, then applied to them.
            self._fit_input_corrections(dataset, observed, seed)
        dataset = self._center_inputs(dataset, observed)

        # Seed torch inside a forked RNG state (CPU and, when training there, the GPUs) so
        # that fitting neither depends on nor disturbs the caller's global random state.
        gpus = cuda_devices(device)
        with torch.random.fork_rng(devices=gpus):
            torch.manual_seed(seed)
            n_train, split = self._split(len(dataset), seed)
            net_args = (n_train, X_rna.shape[1], X_atac, prior_entries, device)
            self.net_ = self._build_net(*net_args, train_split=split, accelerator=accelerator)
            self._run_training(self.net_.fit, dataset, gpus)
            if accelerator is not None:
                self.net_ = _distributed.plain_net(self.net_, self._build_net(*net_args))
        return self._finish_fit(dataset)

    def _finish_fit(self, dataset=None):
        """Fitted attributes derived from the trained module (after fit, continue or load).

        With the training ``dataset`` (after fit or continue, not after load, which restores
        them) it also learns the RNA-to-ATAC map and the peak calibration.
        """
        module = self.net_.module_
        self._evidence_memo = None  # see _link_evidence
        self.feature_embeddings_ = Bunch(
            rna=self._embedding_table(module.decoder_rna, self._names("gene"), "gene")
        )
        # The training cells' posterior means, computed once for what needs them below.
        codes = None
        if dataset is not None and (module.has_atac or dataset.batch is not None):
            codes = self._codes(dataset, tuple(dataset.modalities))
        if dataset is not None:
            self._fit_code_integration(dataset, codes)
        if not module.has_atac:
            return self
        self.feature_embeddings_.atac = self._embedding_table(
            module.decoder_atac, self._names("peak"), "peak"
        )
        if dataset is None:
            return self
        # The two encoders' spaces are aligned only in their cell-cell similarities, so an
        # RNA code is not an ATAC code: cells with RNA alone reach the ATAC decoder through a
        # ridge regression between the posterior means of the paired training cells. Much of
        # an ATAC code is noise that RNA cannot predict, so the penalty (chosen by efficient
        # leave-one-out) is often large: the grid reaches far.
        _, counts, log_library = dataset.modalities["atac"]
        groups = None if dataset.batch is None else dataset.batch.argmax(1)
        atac_codes = codes[:, self.n_latent :]
        if dataset.observed is not None:
            # The maps and the link scores need both codes: paired cells only. The peak
            # statistics need ATAC: the cells that have it.
            has_atac = dataset.observed["atac"]
            codes = codes[has_atac & dataset.observed["rna"]]
            atac_codes, counts, log_library = (
                atac_codes[has_atac],
                counts[has_atac],
                log_library[has_atac],
            )
            groups = None if groups is None else groups[has_atac]
        self.rna_to_atac_ = RidgeCV(alphas=np.logspace(-2, 6, 17)).fit(
            codes[:, : self.n_latent], codes[:, self.n_latent :]
        )
        self.code_covariance_ = _link_scores.code_covariance(
            codes,
            module.decoder_rna.feature_embedding.detach(),
            self._peak_embedding_tensor(),
        )
        # The codes themselves serve the neighbour maps of impute_atac (cells x latent only).
        self.training_codes_ = codes
        self.atac_peak_mean_ = np.asarray(counts.mean(axis=0), dtype=np.float64).ravel()
        self.atac_log_library_median_ = float(np.median(log_library))
        self.atac_peak_bias_ = _accessibility.calibration_bias(
            atac_codes,
            log_library,
            self._peak_embedding_tensor(),
            np.asarray(counts.sum(axis=0)).ravel(),
            bias=self._decoder_intercepts("atac"),
            groups=groups,
            group_bias=self._peak_batch_effects(),
        )
        return self

    def _embedding_table(self, decoder, names, index_name):
        weights = decoder.feature_embedding.detach().cpu().numpy().T.copy()
        columns = [f"latent{i}" for i in range(weights.shape[1])]
        return pd.DataFrame(weights, index=pd.Index(names, name=index_name), columns=columns)

    # ------------------------------------------ training guard, warm start, weights-only files

    def _run_training(self, train, dataset, gpus):
        """Run ``train`` (the net's fit or partial_fit) inside the caller's forked RNG.

        Keeps torch's random state at the end for a warm start. A non-finite loss leaves
        the estimator unfitted rather than holding a model full of NaN. (A KeyboardInterrupt
        is caught by skorch, which keeps the model as it is.)
        """
        try:
            train(dataset, y=None)
        except NonFiniteLossError:
            for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
                delattr(self, name)
            self.__dict__.pop("_rng_state", None)
            raise
        # numpy, not tensors: pickled tensors would bypass skorch's CPU mapping at load.
        states = [torch.get_rng_state()] + [torch.cuda.get_rng_state(g) for g in gpus]
        self._rng_state = [state.numpy().copy() for state in states]

    def _continue_training(self, X_rna, X_atac, prior_entries, batch_onehot=None, observed=None):
        """``warm_start``: train the fitted net ``max_epochs`` more epochs on these cells."""
        if (X_atac is None) != (not self.n_peaks_in_):
            raise ValueError(
                "warm_start continues training the fitted model: pass X_atac "
                + ("as in the first fit." if self.n_peaks_in_ else "only to a cold fit.")
            )
        net = self.net_
        dataset = self._dataset(
            X_rna, X_atac, with_counts=True, batch_onehot=batch_onehot, observed=observed
        )
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        n_train, split = self._split(len(dataset), seed)
        net.set_params(
            max_epochs=self._n_epochs(n_train),
            batch_size=min(self.batch_size, n_train),
            verbose=1 if self.verbose >= 2 else 0,
            train_split=split,
        )
        callbacks = self._callbacks(net.module_.has_atac, net.criterion_.has_prior)
        if _holdout.settings(callbacks) != _holdout.settings(net.callbacks):
            # Re-initializing resets every callback: only when the validation ones changed.
            net.callbacks = callbacks
            net.initialize_callbacks()
        # A new loss with the current weights and this call's prior; the optimizers, and
        # so their state, are kept (skorch's set_params would re-create them).
        for key, value in self._loss_params(prior_entries).items():
            setattr(net, f"criterion__{key}", value)
        device = next(net.module_.parameters()).device
        net.criterion_ = net.initialize_criterion().criterion_.to(device)
        gpus = cuda_devices(str(device))
        with torch.random.fork_rng(devices=gpus):
            state = getattr(self, "_rng_state", None)
            if state is None or len(state) != 1 + len(gpus):
                torch.manual_seed(check_random_state(self.random_state).randint(2**31 - 1))
            else:
                torch.set_rng_state(torch.from_numpy(np.array(state[0])))
                for gpu, gpu_state in zip(gpus, state[1:], strict=True):
                    torch.cuda.set_rng_state(torch.from_numpy(np.array(gpu_state)), gpu)
            self._run_training(net.partial_fit, dataset, gpus)
        return dataset

    def __getstate__(self):
        # The feature embedding tables copy the decoders' weights (7 % of a 10x
        # Multiome model's file): a pickle carries the weights once, and they are rebuilt.
        state = dict(super().__getstate__())  # a copy: object's is the instance's __dict__
        state.pop("_evidence_memo", None)
        if "net_" in state:
            state.pop("feature_embeddings_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "net_" in state and "feature_embeddings_" not in state:
            self._finish_fit()

    @property
    def history_(self):
        """The training history (skorch ``History``): one row per epoch, with the loss terms."""
        check_is_fitted(self, "net_")
        return self.net_.history

    def save(self, path):
        """Save the fitted model as a weights-only ``.npz`` file (no pickle).

        The file holds numeric arrays (network weights, preprocessing, random state) and
        JSON (constructor parameters, feature names, history, versions). Unlike pickle or
        joblib files, which execute code when loaded and must come from trusted sources
        only, it is read back by :meth:`load` without unpickling anything. The write is
        atomic: a failure or Ctrl-C mid-write leaves an existing file at ``path`` intact.

        Parameters
        ----------
        path : str or path-like
            Where to write; ``.npz`` is appended by numpy when missing.

        Returns
        -------
        path : str
            The path written.

        Examples
        --------
        >>> import tempfile, os
        >>> from factvae_sk import FactVAE, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> hvg = data.genes.highly_variable.to_numpy()
        >>> X_rna, X_atac = data.rna[:200, hvg], data.atac[:200, :3000]
        >>> model = FactVAE(max_epochs=1, n_latent=8, random_state=0).fit(X_rna, X_atac)
        >>> path = model.save(os.path.join(tempfile.mkdtemp(), "model.npz"))
        >>> again = FactVAE.load(path)
        >>> bool((again.transform(X_rna) == model.transform(X_rna)).all())
        True
        """
        from ._persistence import save_model

        return save_model(self, path)

    @classmethod
    def load(cls, path, *, device="auto"):
        """Load a model written by :meth:`save`; refuses files holding pickled objects.

        Parameters
        ----------
        path : str or path-like
        device : str, default="auto"
            Device of the loaded module; "auto" picks CUDA when available.

        Returns
        -------
        model : FactVAE
            Fitted: it transforms, scores and imputes exactly as the saved model did, and
            with ``warm_start=True`` continues training exactly as the saved model would (the
            optimizers' state, learning-rate decay and random state are saved too).

        Raises
        ------
        ValueError
            If the file is not one written by :meth:`save`, holds pickled objects, comes
            from a newer model-file format (upgrade factvae_sk), or is damaged (truncated,
            an array missing or of the wrong shape).
        """
        from ._persistence import load_model

        return load_model(cls, path, device=device)

    def _check_hidden_sizes(self):
        for name in ("rna_hidden_sizes", "atac_hidden_sizes"):
            sizes = getattr(self, name)
            if not all(isinstance(s, Integral) and s >= 1 for s in sizes):
                raise ValueError(
                    f"The '{name}' parameter of FactVAE must be a sequence of positive "
                    f"integers. Got {sizes!r} instead."
                )

    # ------------------------------------------------------------------ inputs

    def _needs_atac(self, X_atac, what):
        if X_atac is None:
            raise ValueError(
                f"{what} needs X_atac (the ATAC counts of the same cells, a 2-D matrix)."
            )

    # ------------------------------------------------------------------ outputs

    def transform(self, X_rna, X_atac=None, batch=None, rna_observed=None, atac_observed=None):
        """Cell embeddings: posterior means of the latent code.

        Parameters
        ----------
        X_rna : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_genes)
        X_atac : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_peaks), default=None
            Needed when ``embedding`` is "atac" or "joint".
        batch : array-like of shape (n_cells,), default=None
            Each cell's sample, among those seen at fit (others raise ``ValueError``).
            Needed when the model was fitted with ``batch``: every cell's code is mapped
            through the Harmony state fitted on the training codes
            (``batch_code_harmony_``) by its own sample, alone, so new cells of a known
            sample land where the training cells of that sample do. Refused when fitted
            without.
        rna_observed, atac_observed : array-like of bool, shape (n_cells,), default=None
            For cells measured by one modality (as in :meth:`fit`; needs ``X_atac``). Every
            cell gets a code: a cell without the modality of ``embedding`` gets one carried
            over from its other code (``missing_code``).

        Returns
        -------
        Z : ndarray of shape (n_cells, n_latent) or (n_cells, 2 * n_latent) for "joint"

        Examples
        --------
        >>> from factvae_sk import FactVAE, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> hvg = data.genes.highly_variable.to_numpy()
        >>> X_rna, X_atac = data.rna[:200, hvg], data.atac[:200, :3000]
        >>> model = FactVAE(max_epochs=1, n_latent=8, random_state=0).fit(X_rna, X_atac)
        >>> model.transform(X_rna).shape  # the RNA code (embedding="rna")
        (200, 8)
        >>> model.set_params(embedding="joint").transform(X_rna, X_atac).shape
        (200, 16)
        """
        check_is_fitted(self)
        X_atac = _atac_or_none(X_atac)
        observed = _mosaic.check_observed(
            rna_observed, atac_observed, _num_samples(X_rna), X_atac is not None
        )
        if observed is not None:
            return self._mosaic_codes(X_rna, X_atac, batch, observed)
        if self.embedding != "rna":
            self._needs_atac(X_atac, f"transform with embedding={self.embedding!r}")
        X_rna, X_atac = self._validate_counts(
            X_rna, X_atac if self.embedding != "rna" else None, reset=False
        )
        batch_onehot = self._encoder_batch(batch, X_rna.shape[0], "transform")
        blocks = {"rna": ("rna",), "atac": ("atac",), "joint": ("rna", "atac")}[self.embedding]
        dataset = self._dataset(X_rna, X_atac, with_counts=False, batch_onehot=batch_onehot)
        return self._integrated(self._codes(dataset, blocks), blocks, batch, "transform")

    def fit_transform(
        self,
        X_rna,
        X_atac=None,
        prior=None,
        *,
        y=None,
        batch=None,
        rna_observed=None,
        atac_observed=None,
    ):
        """Fit, then return the embeddings of the training cells.

        Parameters are those of :meth:`fit`; the output is that of :meth:`transform`.

        Returns
        -------
        Z : ndarray of shape (n_cells, n_latent) or (n_cells, 2 * n_latent) for "joint"

        Examples
        --------
        >>> from factvae_sk import FactVAE, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> hvg = data.genes.highly_variable.to_numpy()
        >>> X_rna, X_atac = data.rna[:200, hvg], data.atac[:200, :3000]
        >>> model = FactVAE(max_epochs=1, n_latent=8, random_state=0)
        >>> model.fit_transform(X_rna, X_atac).shape
        (200, 8)
        """
        X_atac = _atac_arg(X_atac, y)
        observed = dict(rna_observed=rna_observed, atac_observed=atac_observed)
        self.fit(X_rna, X_atac, prior=prior, batch=batch, **observed)
        if batch is None and rna_observed is None and atac_observed is None and self.n_peaks_in_:
            # fit has just encoded these cells (training_codes_, every cell when all are
            # paired), from the same encoder inputs in the same batches as transform would:
            # the same numbers, without a second pass of the preprocessing and encoders.
            n = self.n_latent
            codes = self.training_codes_
            return np.array(
                {"rna": codes[:, :n], "atac": codes[:, n:], "joint": codes}[self.embedding]
            )
        return self.transform(X_rna, X_atac, batch=batch, **observed)

    def score(
        self,
        X_rna,
        X_atac=None,
        sample_weight=None,
        *,
        y=None,
        batch=None,
        rna_observed=None,
        atac_observed=None,
    ):
        """Mean per-cell evidence lower bound of held-out cells (higher is better).

        Deterministic: the latent code is the posterior mean. The likelihood is unweighted
        (the loss weights are training choices), so scores compare across hyperparameters.
        With ``X_atac`` (and a model fitted with ATAC) both modalities' terms are summed.
        This is what GridSearchCV and ``cross_val_score`` maximize when no ``scoring`` is
        given.

        Parameters
        ----------
        X_rna : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_genes)
        X_atac : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_peaks), default=None
            A 1-D array (class labels) is ignored, as in :meth:`fit`.
        sample_weight : array-like of shape (n_cells,), default=None
            Non-negative cell weights: the score is then their weighted mean ELBO.
        y : {array-like, sparse matrix, DataFrame} of shape (n_cells, n_peaks), default=None
            Another name for ``X_atac``.
        batch : array-like of shape (n_cells,), default=None
            Each cell's sample: needed when the model was fitted with ``batch``.
        rna_observed, atac_observed : array-like of bool, shape (n_cells,), default=None
            For cells measured by one modality (as in :meth:`fit`; needs ``X_atac``): a
            cell's ELBO is the sum of the terms of the modalities it has.

        Returns
        -------
        score : float

        Examples
        --------
        >>> from factvae_sk import FactVAE, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> hvg = data.genes.highly_variable.to_numpy()
        >>> X_rna, X_atac = data.rna[:200, hvg], data.atac[:200, :3000]
        >>> model = FactVAE(max_epochs=1, n_latent=8, random_state=0).fit(X_rna, X_atac)
        >>> elbo = model.score(X_rna, X_atac)  # mean ELBO per cell, higher is better
        >>> bool(elbo < 0)
        True
        """
        check_is_fitted(self)
        X_atac = _atac_arg(X_atac, y)
        observed = _mosaic.check_observed(
            rna_observed, atac_observed, _num_samples(X_rna), X_atac is not None
        )
        X_rna, X_atac = self._validate_counts(X_rna, X_atac, reset=False, observed=observed)
        if sample_weight is not None:
            sample_weight = _check_cell_weights(sample_weight, X_rna.shape[0])
        batch_onehot = self._batch_onehot(batch, X_rna.shape[0], "score")
        dataset = self._dataset(
            X_rna, X_atac, with_counts=True, batch_onehot=batch_onehot, observed=observed
        )
        module, criterion = self.net_.module_, self.net_.criterion_
        elbos = []
        with torch.no_grad():
            for X, y in self._inference_batches(dataset):
                elbos.append(criterion.per_cell_elbo(module(**X), y).double().cpu().numpy())
        return float(np.average(np.concatenate(elbos), weights=sample_weight))

    # ------------------------------------------------------------------ naming

    def get_feature_names_out(self, input_features=None):
        """Names of the embedding columns, e.g. ``factvae_rna0`` ... ``factvae_atac49``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against the genes seen in ``fit``: the output columns are latent
            dimensions, not genes.

        Returns
        -------
        feature_names_out : ndarray of str objects

        Examples
        --------
        >>> from factvae_sk import FactVAE, load_snare_cellline
        >>> data = load_snare_cellline()
        >>> hvg = data.genes.highly_variable.to_numpy()
        >>> X_rna, X_atac = data.rna[:200, hvg], data.atac[:200, :3000]
        >>> model = FactVAE(max_epochs=1, n_latent=8, embedding="joint", random_state=0)
        >>> names = model.fit(X_rna, X_atac).get_feature_names_out()
        >>> names[0], names[-1]
        ('factvae_rna0', 'factvae_atac7')
        """
        check_is_fitted(self, "n_features_in_")
        _check_feature_names_in(self, input_features, generate_names=False)
        blocks = {"rna": ["rna"], "atac": ["atac"], "joint": ["rna", "atac"]}[self.embedding]
        return np.asarray(
            [f"factvae_{block}{i}" for block in blocks for i in range(self.n_latent)],
            dtype=object,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        # The y slot carries X_atac, an optional non-negative 2-D count matrix; a 1-D y
        # (labels meant for a later Pipeline step) is accepted and ignored.
        tags.target_tags.required = False
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.target_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
