"""FactVAE in scikit-learn workflows on the real cell-line data: Pipeline, GridSearchCV,
cross_val_score, metadata routing, the prior under cross-validation, pickling (in process, in a
fresh process, from a GPU to a CPU-only machine), and parallel and distributed search."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from conftest import FAST
from sklearn import clone, config_context
from sklearn.cluster import KMeans
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.pipeline import Pipeline
from skorch.callbacks import Callback
from skorch.exceptions import DeviceWarning

import factvae_sk
from factvae_sk import FactVAE, GenePeakPrior

pytestmark = pytest.mark.usefixtures("one_thread")

GRID = {"n_latent": [4, 8], "lr": [1e-3, 1e-2]}


class WhereTrained(Callback):
    """Records in the net's history which process trained it and with how many torch threads."""

    def on_epoch_end(self, net, **kwargs):
        net.history.record("pid", os.getpid())
        net.history.record("torch_threads", torch.get_num_threads())


def _n_prior_entries(prior):
    return sp.csr_matrix(prior).count_nonzero()


def _uses_whole_prior(model, prior):
    """The fitted model's prior term holds exactly the non-zero entries of ``prior``."""
    criterion = model.net_.criterion_
    coo = sp.coo_matrix(prior)
    keep = coo.data != 0
    return (
        criterion.has_prior
        and np.array_equal(criterion.prior_rows.numpy(), coo.row[keep])
        and np.array_equal(criterion.prior_cols.numpy(), coo.col[keep])
    )


# ---------------------------------------------------------------- Pipeline, search, CV


def test_pipeline_embeds_then_clusters(small):
    train, test = slice(0, 200), slice(200, 300)
    pipe = Pipeline(
        [
            ("factvae", FactVAE(random_state=0, **FAST)),
            ("kmeans", KMeans(4, n_init=10, random_state=0)),
        ]
    )
    pipe.fit(
        small["rna"][train], small["atac"][train], factvae__prior=GenePeakPrior(small["prior"])
    )
    factvae, kmeans = pipe.named_steps["factvae"], pipe.named_steps["kmeans"]
    assert _uses_whole_prior(factvae, small["prior"])
    assert kmeans.cluster_centers_.shape == (4, FAST["n_latent"])
    assert len(np.unique(kmeans.labels_)) == 4

    labels = pipe.predict(small["rna"][test])  # new cells: RNA alone is enough
    assert labels.shape == (100,)
    np.testing.assert_array_equal(labels, kmeans.predict(factvae.transform(small["rna"][test])))


def test_grid_search_selects_by_heldout_elbo(small):
    rna, atac, prior = small["rna"][:240], small["atac"][:240], small["prior"]
    estimator = FactVAE(random_state=0, **FAST)
    search = GridSearchCV(estimator, GRID, cv=3).fit(rna, atac, prior=GenePeakPrior(prior))

    results = search.cv_results_
    assert len(results["params"]) == 4
    assert np.isfinite(results["mean_test_score"]).all()
    assert search.best_params_["n_latent"] in GRID["n_latent"]
    assert search.best_params_["lr"] in GRID["lr"]
    assert search.best_index_ == np.argmax(results["mean_test_score"])
    assert search.best_estimator_.get_params()["n_latent"] == search.best_params_["n_latent"]
    assert _uses_whole_prior(search.best_estimator_, prior)

    # A split's test score is FactVAE.score on the held-out cells, both modalities.
    train, test = next(KFold(3).split(rna))
    model = clone(estimator).set_params(**results["params"][1])
    model.fit(rna[train], atac[train], prior=GenePeakPrior(prior))
    assert results["split0_test_score"][1] == model.score(rna[test], atac[test])


def test_cross_val_score_gives_heldout_elbos(small):
    model, params = FactVAE(random_state=0, **FAST), {"prior": GenePeakPrior(small["prior"])}
    # cross_val_score and cross_validate (unlike GridSearchCV) validate y as a dense
    # array-like: pass X_atac dense, or sparse with scikit-learn's parameter validation off.
    scores = cross_val_score(model, small["rna"], small["atac"].toarray(), cv=3, params=params)
    assert scores.shape == (3,)
    assert np.isfinite(scores).all()
    # An ELBO of counts is a log-likelihood (<= 0) minus a KL (>= 0).
    assert (scores < 0).all()
    with config_context(skip_parameter_validation=True):
        sparse_scores = cross_val_score(model, small["rna"], small["atac"], cv=3, params=params)
    assert np.array_equal(sparse_scores, scores)


# ---------------------------------------------------------------- the prior is never split


@pytest.fixture(scope="module")
def square(small):
    """150 cells and their 150 most expressed genes: a prior with one row per cell too."""
    n = 150
    rna = small["rna"][:n]
    genes = np.sort(np.argsort(-np.asarray(rna.sum(axis=0)).ravel(), kind="stable")[:n])
    # X_atac dense: cross_validate accepts no sparse y (see test_cross_val_score_...).
    return rna[:, genes], small["atac"][:n].toarray(), small["prior"][genes]


def test_raw_prior_cut_by_cross_validation_is_refused(square):
    rna, atac, prior = square
    assert prior.shape[0] == rna.shape[0] and _n_prior_entries(prior) > 0
    # Fitted directly, the raw prior is fine.
    assert _uses_whole_prior(FactVAE(random_state=0, **FAST).fit(rna, atac, prior=prior), prior)
    # GridSearchCV cuts it to the training cells of each split: a clear error, no fit.
    search = GridSearchCV(FactVAE(random_state=0, **FAST), {"n_latent": [4]}, cv=3)
    with pytest.raises(ValueError, match=r"split by cells(.|\n)*GenePeakPrior\(prior\)"):
        search.fit(rna, atac, prior=prior)


def test_wrapped_prior_reaches_every_split_whole(square):
    rna, atac, prior = square
    result = cross_validate(
        FactVAE(random_state=0, **FAST),
        rna,
        atac,
        cv=3,
        params={"prior": GenePeakPrior(prior)},
        return_estimator=True,
    )
    assert np.isfinite(result["test_score"]).all()
    for model in result["estimator"]:
        assert model.net_.criterion_.prior_rows.numel() == _n_prior_entries(prior)
        assert _uses_whole_prior(model, prior)


# ---------------------------------------------------------------- metadata routing


def test_routing_on_prior_reaches_fit(small):
    rna, atac, prior = small["rna"][:150], small["atac"][:150], small["prior"]
    with config_context(enable_metadata_routing=True):
        factvae = FactVAE(random_state=0, **FAST).set_fit_request(prior=True)
        pipe = Pipeline([("factvae", factvae), ("kmeans", KMeans(4, n_init=1, random_state=0))])
        pipe.fit(rna, atac, prior=GenePeakPrior(prior))
        assert _uses_whole_prior(pipe.named_steps["factvae"], prior)

        search = GridSearchCV(
            Pipeline([("factvae", clone(factvae))]), {"factvae__n_latent": [4, 8]}, cv=2
        )
        search.fit(rna, atac, prior=GenePeakPrior(prior))
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()
        assert _uses_whole_prior(search.best_estimator_.named_steps["factvae"], prior)

        result = cross_validate(
            clone(factvae),
            rna,
            atac.toarray(),
            cv=2,
            params={"prior": GenePeakPrior(prior)},
            return_estimator=True,
        )
        assert all(_uses_whole_prior(model, prior) for model in result["estimator"])

        # Not requested: routing refuses to drop it silently.
        with pytest.raises(UnsetMetadataPassedError, match="prior"):
            Pipeline([("factvae", FactVAE(**FAST))]).fit(rna, atac, prior=GenePeakPrior(prior))


def test_routing_off_step_name_form(small):
    rna, atac, prior = small["rna"][:150], small["atac"][:150], small["prior"]
    pipe = Pipeline([("factvae", FactVAE(random_state=0, **FAST))])
    search = GridSearchCV(pipe, {"factvae__n_latent": [4, 8]}, cv=2)
    search.fit(rna, atac, factvae__prior=GenePeakPrior(prior))
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert _uses_whole_prior(search.best_estimator_.named_steps["factvae"], prior)
    # Pipeline.score is FactVAE.score: the search ranks by held-out ELBO here too.
    best = search.best_estimator_
    assert best.score(rna, atac) == best.named_steps["factvae"].score(rna, atac)


# ---------------------------------------------------------------- pickling


@pytest.fixture(scope="module")
def fitted(small):
    model = FactVAE(embedding="joint", random_state=0, **FAST)
    return model.fit(small["rna"][:200], small["atac"][:200], prior=GenePeakPrior(small["prior"]))


@pytest.fixture(scope="module")
def new_cells(small):
    return small["rna"][200:], small["atac"][200:]


def test_pickle_round_trip_is_bit_identical(fitted, new_cells):
    rna, atac = new_cells
    loaded = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(loaded.transform(rna, atac), fitted.transform(rna, atac))
    assert np.array_equal(loaded.impute_atac(atac), fitted.impute_atac(atac))
    assert loaded.score(rna, atac) == fitted.score(rna, atac)
    assert np.array_equal(loaded.feature_embeddings_.atac, fitted.feature_embeddings_.atac)


def test_pickle_stores_the_decoder_weights_once(fitted, new_cells):
    """The feature embedding tables copy the decoders' weights: the pickle leaves them out
    and loading rebuilds them, names and values, from the weights."""
    state = fitted.__getstate__()
    assert "feature_embeddings_" not in state and "feature_embeddings_" in vars(fitted)
    blob = pickle.dumps(fitted)
    with_tables = pickle.dumps({**state, "tables": fitted.feature_embeddings_})
    assert len(blob) < len(with_tables) - fitted.feature_embeddings_.atac.to_numpy().nbytes
    loaded = pickle.loads(blob)
    for name in ("rna", "atac"):
        pd.testing.assert_frame_equal(
            loaded.feature_embeddings_[name], fitted.feature_embeddings_[name]
        )
    weights = fitted.net_.module_.decoder_atac.feature_embedding.detach().numpy().T
    assert np.array_equal(loaded.feature_embeddings_.atac.to_numpy(), weights)
    rna, atac = new_cells
    assert np.array_equal(loaded.transform(rna, atac), fitted.transform(rna, atac))
    assert np.array_equal(loaded.impute_atac(atac), fitted.impute_atac(atac))


_LOAD_AND_RUN = """
import sys
from pathlib import Path
import joblib, numpy as np, scipy.sparse as sp, torch
folder = Path(sys.argv[1])
torch.set_num_threads(int(sys.argv[2]))  # as in the parent: same float summation order
model = joblib.load(folder / "model.joblib")
rna, atac = sp.load_npz(folder / "rna.npz"), sp.load_npz(folder / "atac.npz")
np.save(folder / "Z.npy", model.transform(rna, atac))
np.save(folder / "imputed.npy", model.impute_atac(atac))
"""


def test_joblib_round_trip_in_a_fresh_process(fitted, new_cells, tmp_path):
    rna, atac = new_cells
    joblib.dump(fitted, tmp_path / "model.joblib")
    sp.save_npz(tmp_path / "rna.npz", rna)
    sp.save_npz(tmp_path / "atac.npz", atac)
    package_root = str(Path(factvae_sk.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_RUN, str(tmp_path), str(torch.get_num_threads())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr
    assert np.array_equal(np.load(tmp_path / "Z.npy"), fitted.transform(rna, atac))
    assert np.array_equal(np.load(tmp_path / "imputed.npy"), fitted.impute_atac(atac))


def test_model_pickled_on_a_gpu_loads_on_a_cpu_only_machine(fitted, new_cells, monkeypatch):
    """Simulated: every torch storage is pickled as if it lived on cuda:0, the net and the
    estimator say "cuda", and CUDA is unavailable at load. Any tensor pickled outside skorch's
    device mapping would fail to load ("Attempting to deserialize object on a CUDA device")."""
    rna, atac = new_cells
    gpu_model = pickle.loads(pickle.dumps(fitted))
    gpu_model.set_params(device="cuda")
    gpu_model.net_.device = "cuda"
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        blob = pickle.dumps(gpu_model)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning):
        loaded = pickle.loads(blob)
    assert torch.device(loaded.net_.device) == torch.device("cpu")
    assert {p.device.type for p in loaded.module_.parameters()} == {"cpu"}
    # Inference follows the module's device, not the "cuda" the estimator was given.
    assert loaded.device == "cuda"
    assert np.array_equal(loaded.transform(rna, atac), fitted.transform(rna, atac))
    assert np.array_equal(loaded.impute_atac(atac), fitted.impute_atac(atac))


# ---------------------------------------------------------------- parallel and distributed


def _expected_worker_threads(n_jobs):
    """joblib's loky workers get OMP_NUM_THREADS = cpu_count // n_jobs unless it is set."""
    default = max(joblib.cpu_count() // n_jobs, 1)
    return int(os.environ.get("OMP_NUM_THREADS", default))


def test_grid_search_in_worker_processes(small):
    rna, atac, prior = small["rna"][:150], small["atac"][:150], small["prior"]
    search = GridSearchCV(FactVAE(random_state=0, **FAST), {"n_latent": [4, 8]}, cv=2, n_jobs=2)
    search.fit(rna, atac, prior=GenePeakPrior(prior))
    serial = GridSearchCV(FactVAE(random_state=0, **FAST), {"n_latent": [4, 8]}, cv=2)
    serial.fit(rna, atac, prior=GenePeakPrior(prior))
    # The same fits (identical when workers and this process use as many torch threads).
    # Dropping the prior in the workers would move the scores by ~5e-5 relative.
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"], rtol=1e-5
    )
    assert _uses_whole_prior(search.best_estimator_, prior)


def test_workers_do_not_oversubscribe_torch_threads(small):
    rna, atac = small["rna"][:150], small["atac"][:150].toarray()
    model = FactVAE(random_state=0, callbacks=[WhereTrained()], **FAST)
    result = cross_validate(model, rna, atac, cv=2, n_jobs=2, return_estimator=True)
    for fold in result["estimator"]:
        assert fold.net_.history[-1, "pid"] != os.getpid()  # trained in a worker
        assert max(fold.net_.history[:, "torch_threads"]) <= _expected_worker_threads(2)


def test_search_runs_on_a_dask_cluster(small):
    distributed = pytest.importorskip("dask.distributed")
    rna, atac, prior = small["rna"][:150], small["atac"][:150], small["prior"]
    model = FactVAE(random_state=0, callbacks=[WhereTrained()], **FAST)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        worker_pids = set(client.run(os.getpid).values())
        with joblib.parallel_config(backend="dask"):
            search = GridSearchCV(model, {"n_latent": [4, 8]}, cv=2)
            with distributed.get_task_stream(client) as tasks:
                search.fit(rna, atac, prior=GenePeakPrior(prior))
            result = cross_validate(model, rna, atac.toarray(), cv=2, return_estimator=True)

    assert len(tasks.data) >= 4  # the 2 candidates x 2 splits ran as Dask tasks
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["n_latent"] in (4, 8)
    for fold in result["estimator"]:
        assert fold.net_.history[-1, "pid"] in worker_pids
        # Dask's nanny starts workers with OMP_NUM_THREADS=1: one torch thread per worker.
        assert set(fold.net_.history[:, "torch_threads"]) == {1}
