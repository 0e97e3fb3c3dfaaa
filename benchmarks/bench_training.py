"""Speed and memory of FactVAE training, printed as tables.

    python benchmarks/bench_training.py [--quick]

1. ZINB log-likelihood, forward + backward on one batch of 128 cells: the package's
   implementation vs the textbook dense formulation (``log(mu + eps)``, ``logaddexp``
   and ``lgamma`` on every entry), at the sparsity of real ATAC counts.
2. Seconds per training epoch on the bundled SNARE-seq data (RNA alone, RNA + ATAC).
3. Peak traced host memory of ``fit`` as cells grow, next to the size a dense copy of the
   ATAC counts would take: memory must not grow with cells x features.

Timings are medians of repeated runs in one process; compare ratios, not absolute seconds.
"""

import argparse
import statistics
import time
import tracemalloc

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from factvae_sk import FactVAE, load_snare_cellline
from factvae_sk._distributions import zinb_log_prob


def textbook_zinb_log_prob(x, mu, theta, pi_logits, eps=1e-8):
    """The common dense formulation (as in many VAE codebases), for comparison only."""
    softplus_pi = F.softplus(-pi_logits)
    log_theta_eps = torch.log(theta + eps)
    log_theta_mu_eps = torch.log(theta + mu + eps)
    pi_theta_log = -pi_logits + theta * (log_theta_eps - log_theta_mu_eps)
    case_zero = F.softplus(pi_theta_log) - softplus_pi
    case_nonzero = (
        -softplus_pi
        + pi_theta_log
        + x * (torch.log(mu + eps) - log_theta_mu_eps)
        + torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
    )
    return torch.where(x < eps, case_zero, case_nonzero)


def median_seconds(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def likelihood_table(repeats):
    print("\n1. ZINB log-likelihood, forward + backward, batch of 128 cells (median seconds)")
    print(f"{'features':>9} {'nonzero':>8} {'textbook':>10} {'factvae_sk':>11} {'speed-up':>9}")
    rng = np.random.default_rng(0)
    for n_features, density in [(2000, 0.10), (27399, 0.025), (100000, 0.01)]:
        counts = (rng.random((128, n_features)) < density) * rng.integers(1, 4, (128, n_features))
        inputs = (
            torch.as_tensor(counts, dtype=torch.float32),
            torch.randn(128, n_features),
            torch.randn(128, n_features),
            torch.randn(128, n_features),
        )
        textbook = median_seconds(lambda i=inputs: _likelihood_step("textbook", *i), repeats)
        ours = median_seconds(lambda i=inputs: _likelihood_step("ours", *i), repeats)
        speed_up = textbook / ours
        print(f"{n_features:>9} {density:>8.1%} {textbook:>10.4f} {ours:>11.4f} {speed_up:>8.1f}x")


def _likelihood_step(kind, x, logits, dispersion, pi_logits):
    a = logits.clone().requires_grad_()
    b = dispersion.clone().requires_grad_()
    c = pi_logits.clone().requires_grad_()
    log_mu = 8.0 + F.log_softmax(a, dim=-1)
    log_theta = F.softmax(b, dim=-1)
    if kind == "textbook":
        out = textbook_zinb_log_prob(x, log_mu.exp(), log_theta.exp(), c)
    else:
        out = zinb_log_prob(x, log_mu, log_theta, c)
    out.sum().backward()


def epoch_table(epochs):
    print(f"\n2. Fit on the bundled SNARE-seq data: seconds per epoch ({epochs} epochs, fit time")
    print("   including preprocessing, divided by epochs)")
    data = load_snare_cellline()
    rna = data.rna[:, data.genes.highly_variable.to_numpy()]
    print(f"{'model':<24} {'s/epoch':>8}")
    for name, atac in [("RNA only", None), ("RNA + ATAC (27399)", data.atac)]:
        model = FactVAE(max_epochs=epochs, random_state=0)
        start = time.perf_counter()
        model.fit(rna, atac)
        print(f"{name:<24} {(time.perf_counter() - start) / epochs:>8.2f}")


def memory_table(cell_counts):
    print("\n3. Peak traced host memory of fit (1 epoch) vs a dense copy of the ATAC counts")
    print(f"{'cells':>7} {'peaks':>7} {'dense ATAC MB':>14} {'fit peak MB':>12}")
    n_peaks = 50_000
    for n_cells in cell_counts:
        rng = np.random.default_rng(n_cells)
        rna = sp.random(n_cells, 500, density=0.05, format="csr", random_state=rng) * 5
        atac = sp.random(n_cells, n_peaks, density=0.003, format="csr", random_state=rng) * 3
        rna = (rna.ceil() + sp.eye(n_cells, 500, format="csr")).tocsr()
        atac = (atac.ceil() + sp.eye(n_cells, n_peaks, format="csr")).tocsr()
        model = FactVAE(max_epochs=1, random_state=0, rna_n_components=30, atac_n_components=30)
        tracemalloc.start()
        model.fit(rna, atac)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"{n_cells:>7} {n_peaks:>7} {n_cells * n_peaks * 4 / 1e6:>14.0f} {peak / 1e6:>12.1f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    likelihood_table(repeats=3 if args.quick else 10)
    epoch_table(epochs=2 if args.quick else 5)
    memory_table([1000, 4000] if args.quick else [1000, 4000, 16000])


if __name__ == "__main__":
    main()
