"""Data-parallel scaling: seconds per epoch of one fit on 1 and on 2 processes.

    PYTHONPATH=. python benchmarks/bench_distributed.py [--epochs 10] [--cores 2] [--device cpu]

Runs ``examples/distributed_fit.py`` under ``torchrun --standalone --nproc_per_node N`` for
N = 1, 2 (``--processes`` to change), each process given ``cores // N`` torch threads so
that every run uses the same cores, on each bundled dataset, and prints the median seconds
per epoch (first epoch excluded), the speed-up over one process and the KMeans ARI of the
RNA and ATAC embeddings (a short fit: compare rows, not with 300-epoch scores). The global
batch is the same (128) in every run, so each process's share shrinks as N grows.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(processes, dataset, epochs, cores, device):
    threads = str(max(1, cores // processes))
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
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--datasets", nargs="+", default=["snare", "kidney"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets:
        results = [run(n, dataset, args.epochs, args.cores, args.device) for n in args.processes]
        for result in results:
            speedup = results[0]["seconds_per_epoch"] / result["seconds_per_epoch"]
            threads = max(1, args.cores // result["processes"])
            rows.append(
                f"| {dataset} | {result['processes']} | {threads} "
                f"| {result['seconds_per_epoch']:.2f} | {speedup:.2f}x "
                f"| {result['ari_rna']:.3f} | {result['ari_atac']:.3f} |"
            )
    print(f"\n{args.epochs} epochs, device {args.device}, {args.cores} cores in all\n")
    print("| dataset | processes | threads each | s/epoch | speed-up | ARI RNA | ARI ATAC |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
