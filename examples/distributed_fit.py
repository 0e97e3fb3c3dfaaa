"""FactVAE trained data-parallel over several processes (GPUs, or CPU processes).

Every process runs this same script on the same bundled data; each trains on its share of
every batch, and rank 0 prints the KMeans ARI of the RNA and ATAC embeddings against the
known labels (and saves the model with ``--save``):

    torchrun --nproc_per_node 2 examples/distributed_fit.py --epochs 50
    accelerate launch --multi_gpu --num_processes 2 examples/distributed_fit.py --epochs 50
    python examples/distributed_fit.py --epochs 50          # one process

Needs ``pip install "factvae_sk[accelerate]"``. On machines without GPUs the processes
train on the CPU (gloo backend); give each process its share of the cores, e.g.
``OMP_NUM_THREADS=4 torchrun --nproc_per_node 4 ...`` on 16 cores.
"""

import argparse
import json
import statistics

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from factvae_sk import FactVAE, gene_peak_prior, load_scicar_kidney, load_snare_cellline


def load(name):
    """Counts, prior and labels of a bundled dataset (SNARE-seq: its 2000 HVGs)."""
    if name == "snare":
        data = load_snare_cellline()
        genes = data.genes.highly_variable.to_numpy()
        labels = data.cells.cell_line.to_numpy()
    else:
        data = load_scicar_kidney()
        genes = np.ones(data.rna.shape[1], dtype=bool)
        labels = data.cells.cell_type.to_numpy()
    prior = gene_peak_prior(data.genes[genes], data.peaks)
    return data.rna[:, genes], data.atac, prior, labels


def ari(codes, labels):
    clusters = KMeans(len(set(labels)), n_init=10, random_state=0).fit_predict(codes)
    return adjusted_rand_score(labels, clusters)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--dataset", choices=("snare", "kidney"), default="snare")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (all processes)")
    parser.add_argument("--precision", choices=("32", "bf16"), default="32")
    parser.add_argument("--device", default="auto", help='"auto" (a GPU per process) or "cpu"')
    parser.add_argument("--save", help="rank 0 writes the fitted model here (.npz)")
    parser.add_argument("--json", help="rank 0 writes timings and scores here")
    args = parser.parse_args(argv)

    X_rna, X_atac, prior, labels = load(args.dataset)
    model = FactVAE(
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        precision=args.precision,
        device=args.device,
        distributed=True,
        random_state=0,
    )
    model.fit(X_rna, X_atac, prior=prior)

    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    if rank != 0:
        return
    durations = model.history_[:, "dur"]
    result = {
        "dataset": args.dataset,
        "processes": world_size,
        "epochs": args.epochs,
        "precision": args.precision,
        # The first epoch carries one-off costs (allocation, process-group warm-up).
        "seconds_per_epoch": statistics.median(durations[1:] or durations),
        "ari_rna": ari(model.transform(X_rna), labels),
        "ari_atac": ari(model.set_params(embedding="atac").transform(X_rna, X_atac), labels),
    }
    print(
        f"{args.dataset}: {world_size} process(es), {args.epochs} epochs, "
        f"{result['seconds_per_epoch']:.2f} s/epoch; "
        f"ARI RNA {result['ari_rna']:.3f}, ATAC {result['ari_atac']:.3f}"
    )
    if args.save:
        model.set_params(embedding="rna").save(args.save)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
