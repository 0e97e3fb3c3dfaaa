"""Data-parallel scaling: seconds per epoch of one fit on 1 and on 2 processes.

    PYTHONPATH=. python benchmarks/bench_distributed.py [--epochs 10] [--configs 1:1 2:1 1:2]

Runs ``examples/distributed_fit.py`` under ``torchrun --standalone --nproc_per_node N`` with
T torch threads per process, for each ``--configs`` entry ``N:T`` (default 1:1, 2:1, 1:2:
one process on one core, two processes on one core each, one process on two threads), on
each bundled dataset, and prints the median seconds per epoch (first epoch excluded), the
speed-up over the first configuration and the KMeans ARI of the RNA and ATAC embeddings (a
short fit: compare rows, not with 300-epoch scores). The global batch is the same (128) in
every run, so each process's share shrinks as N grows.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(processes, threads, dataset, epochs, device):
    threads = str(threads)
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc_per_node", str(processes), str(REPO / "examples/distributed_fit.py")]
        command += ["--epochs", str(epochs), "--dataset", dataset, "--device", device]
        subprocess.run(command + ["--json", str(out)], env=env, check=True)
        return json.loads(out.read_text())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--configs", nargs="+", default=["1:1", "2:1", "1:2"])
    parser.add_argument("--datasets", nargs="+", default=["snare", "kidney"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets:
        configs = [tuple(map(int, config.split(":"))) for config in args.configs]
        results = [run(n, t, dataset, args.epochs, args.device) for n, t in configs]
        for (_, threads), result in zip(configs, results, strict=True):
            speedup = results[0]["seconds_per_epoch"] / result["seconds_per_epoch"]
            rows.append(
                f"| {dataset} | {result['processes']} | {threads} "
                f"| {result['seconds_per_epoch']:.2f} | {speedup:.2f}x "
                f"| {result['ari_rna']:.3f} | {result['ari_atac']:.3f} |"
            )
    print(f"\n{args.epochs} epochs, device {args.device}\n")
    print("| dataset | processes | threads each | s/epoch | speed-up | ARI RNA | ARI ATAC |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
