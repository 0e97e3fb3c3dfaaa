"""``max_epochs="auto"`` against the method's 300 epochs on the bundled datasets.

    PYTHONPATH=. python benchmarks/eval_training_length.py [--dataset kidney] [--seeds 0 1 2]

Each fit trains ``max_epochs="auto"`` epochs with the defaults (its codes scored), then
continues with ``warm_start`` to 300 epochs in all: a warm start continues exactly as one
longer fit would (optimizer state, learning-rate decay and random stream carried on), so
the second codes are those of a 300-epoch fit. Scores: KMeans ARI with the metric of
``tests/test_real_data.py`` (``n_init=10``, ``random_state=0``), the harness's KMeans ARI
(mean of 3 KMeans seeds) and Leiden ARI (``eval_embeddings.leiden_ari``), for the RNA code
(what ``transform`` returns) and the joint concatenation. On the cell lines (1047 cells)
"auto" is 300 epochs, the same fit by construction.
"""

import argparse
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from benchmarks.eval_embeddings import leiden_ari
from benchmarks.harness.clustering import kmeans_scores
from benchmarks.harness.data import load_dataset
from factvae_sk import FactVAE
from factvae_sk.model._training_setup import AUTO_MAX_EPOCHS


def _scores(codes, labels):
    k = len(np.unique(labels))
    test = adjusted_rand_score(labels, KMeans(k, n_init=10, random_state=0).fit_predict(codes))
    return test, kmeans_scores(codes, labels)[0], leiden_ari(codes, labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="kidney", choices=["snare", "kidney"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cache", default=None, help="folder for the codes (reused)")
    args = parser.parse_args()
    data = load_dataset(args.dataset)
    rows = []
    for seed in args.seeds:
        path = Path(args.cache or ".") / f"length_{args.dataset}_s{seed}.npz"
        if args.cache and path.exists():
            saved = dict(np.load(path))
        else:
            model = FactVAE(embedding="joint", random_state=seed)
            auto = model.fit(data.rna, data.atac, prior=data.prior)
            n_auto = len(auto.history_)
            saved = {"auto": auto.transform(data.rna, data.atac), "n_auto": n_auto}
            if n_auto < AUTO_MAX_EPOCHS:
                model.set_params(warm_start=True, max_epochs=AUTO_MAX_EPOCHS - n_auto)
                model.fit(data.rna, data.atac, prior=data.prior)
                saved["full"] = model.transform(data.rna, data.atac)
            if args.cache:
                np.savez(path, **saved)
        n_latent = saved["auto"].shape[1] // 2
        for name, epochs in (("auto", int(saved["n_auto"])), ("full", AUTO_MAX_EPOCHS)):
            if name not in saved:
                continue
            codes = saved[name]
            rna = _scores(codes[:, :n_latent], data.labels)
            joint = _scores(codes, data.labels)
            rows.append((seed, epochs, rna, joint))
            print(
                f"| {seed} | {epochs} | "
                + " / ".join(f"{v:.3f}" for v in rna)
                + " | "
                + " / ".join(f"{v:.3f}" for v in joint)
                + " |",
                flush=True,
            )


if __name__ == "__main__":
    main()
