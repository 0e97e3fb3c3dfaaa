"""Speed and memory of FactVAE training against the yardstick, printed as tables.

    PYTHONPATH=. python benchmarks/bench_training.py [--quick] [--threads N]

The yardstick (``benchmarks/harness/reference_impl.py``) is a straightforward implementation of
SPEC.md as written: whole count matrices densified up front, three decoder products, the
textbook ZINB formula, the dense genes x peaks similarity for the prior, both encoders re-run
for distillation. ``tests/test_yardstick.py`` checks that it and the package agree.

1. ZINB log-likelihood of one batch (forward + backward): textbook, the package's
   elementwise function, and the per-cell sum that training uses.
2. The bundled SNARE-seq data (1047 cells, 2000 genes, 27399 peaks, default
   hyperparameters): seconds per epoch of the yardstick and of FactVAE, measured in one
   process with their epochs interleaved (so machine load hits both alike), and the peak
   resident memory of each, measured in a fresh process per implementation.
3. Scaling on synthetic sparse data (3 % non-zero RNA, 2 % ATAC): seconds per epoch as cells
   and peaks grow, the share of an epoch spent batching from CSR, and peak resident memory;
   the yardstick where its dense matrices fit under ``--yardstick-cap-gb``.
4. Memory: one epoch of FactVAE on 20,000 cells x 4,000 genes x 100,000 peaks.

Timings are medians over epochs (the first, warm-up epoch excluded); compare ratios, not
absolute seconds, across machines. Peak memory is the maximum resident set (``VmHWM``) of a
fresh process per measurement (``benchmarks.harness.memory``), including the data and the
interpreter (about 0.3-0.4 GB with torch).
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from benchmarks.harness import reference_impl
from benchmarks.harness.memory import peak_rss_mb, run_fresh
from factvae_sk import FactVAE, gene_peak_prior, load_snare_cellline
from factvae_sk.data._dataset import PairedCountsDataset
from factvae_sk.data._preprocessing import ATACEncoderInput, RNAEncoderInput
from factvae_sk.data._validation import check_prior
from factvae_sk.nn._distributions import count_log_prob_sum, zinb_log_prob
from factvae_sk.utils._malloc import heap_allocations

# ----------------------------------------------------------------------------- data


def synthetic(n_cells, n_genes, n_peaks, rna_density=0.03, atac_density=0.02, seed=0):
    """Sparse RNA and ATAC counts (float32 CSR) and a gene x peak prior (~2 peaks a gene)."""
    rng = np.random.default_rng(seed)

    def counts(n_features, density, high):
        per_row = rng.binomial(n_features, density, n_cells).clip(1)
        indptr = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int64)
        indices = rng.integers(0, n_features, indptr[-1], dtype=np.int32)
        data = rng.integers(1, high, indptr[-1]).astype(np.float32)
        matrix = sp.csr_matrix((data, indices, indptr), shape=(n_cells, n_features))
        matrix.sum_duplicates()
        return matrix

    rna, atac = counts(n_genes, rna_density, 8), counts(n_peaks, atac_density, 3)
    n_links = 2 * n_genes
    prior = sp.csr_matrix(
        (
            np.ones(n_links, np.float32),
            (rng.integers(0, n_genes, n_links), rng.integers(0, n_peaks, n_links)),
        ),
        shape=(n_genes, n_peaks),
    )
    prior.data[:] = 1.0
    return rna, atac, prior


def real(n_cells=None):
    """The bundled data (highly variable genes, overlap prior), or its first ``n_cells``."""
    data = load_snare_cellline()
    hvg = data.genes.highly_variable.to_numpy()
    cells = slice(n_cells)
    prior = gene_peak_prior(data.genes[hvg], data.peaks)
    return data.rna[cells][:, hvg], data.atac[cells], prior


def load(spec):
    """``["real", n_cells or None]`` or ``[n_cells, n_genes, n_peaks]`` (synthetic)."""
    return real(spec[1]) if spec[0] == "real" else synthetic(*spec)


# --------------------------------------------------------------------- measurements


class _EpochTimer:
    """skorch callback: wall time of every epoch, and an optional hook after each one."""

    def __init__(self, after_epoch=None):
        from skorch.callbacks import Callback

        timer = self

        class _Callback(Callback):
            def on_epoch_begin(self, net, **kwargs):
                timer.start = time.perf_counter()

            def on_epoch_end(self, net, **kwargs):
                timer.times.append(time.perf_counter() - timer.start)
                if after_epoch is not None:
                    after_epoch()

        self.times, self.callback = [], _Callback()


class _BatchingTimer:
    """Times ``PairedCountsDataset.__getitems__`` (slicing and densifying a CSR batch)."""

    def __init__(self):
        self.seconds = 0.0
        original = PairedCountsDataset.__getitems__

        def timed(dataset, indices):
            start = time.perf_counter()
            out = original(dataset, indices)
            self.seconds += time.perf_counter() - start
            return out

        PairedCountsDataset.__getitems__ = timed


def _yardstick(rna, atac, prior, seed=0):
    rna_input = RNAEncoderInput(100, random_state=seed).fit_transform(rna)
    atac_input = ATACEncoderInput(100, random_state=seed).fit_transform(atac)
    entries = check_prior(prior, rna.shape[1], atac.shape[1])
    return reference_impl.ReferenceFactVAE(rna_input, rna, atac_input, atac, entries, seed=seed)


def worker(impl, spec, epochs):
    """Run in a fresh process: train ``impl`` on ``spec``; return timings and peak memory."""
    base_rss = peak_rss_mb()
    rna, atac, prior = load(spec)
    result = {"base_rss_mb": base_rss}
    if impl == "yardstick":
        model = _yardstick(rna, atac, prior)
        del rna, atac  # the yardstick keeps its own dense copies
        # It is slow: time a few steps (after a warm-up) and scale to an epoch's steps.
        n_cells, batch = model.rna_counts.shape[0], model.batch_size
        order = np.random.default_rng(0).permutation(n_cells)
        steps = []
        for k in range(min(n_cells // batch, 6)):
            start = time.perf_counter()
            model.train_step(order[k * batch : (k + 1) * batch])
            steps.append(time.perf_counter() - start)
        times = [statistics.median(steps[1:] or steps) * (n_cells // batch)]
    else:
        batching = _BatchingTimer()
        timer = _EpochTimer()
        model = FactVAE(max_epochs=epochs, random_state=0, callbacks=[("timer", timer.callback)])
        start = time.perf_counter()
        model.fit(rna, atac, prior=prior)
        result["fit_s"] = time.perf_counter() - start
        times = timer.times
        result["batching_share"] = batching.seconds / sum(times)
    result["s_per_epoch"] = statistics.median(times[1:] if len(times) > 1 else times)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def in_subprocess(impl, spec, epochs, threads):
    """:func:`worker` in a fresh process, so that its peak memory is its own."""
    try:
        return run_fresh(__file__, "--worker", json.dumps([impl, spec, epochs]), threads=threads)
    except RuntimeError as error:
        raise RuntimeError(f"worker {impl} {spec} failed:\n{error}") from None


def median_seconds(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- tables


def likelihood_table(repeats, sizes=((2000, 0.10), (27399, 0.025), (100000, 0.02))):
    print("\n1. ZINB log-likelihood of a batch of 128 cells, forward + backward (median ms)")
    print(f"{'features':>9} {'nonzero':>8} {'textbook':>9} {'elementwise':>12} {'per-cell':>9}")
    rng = np.random.default_rng(0)
    for n_features, density in sizes:
        counts = (rng.random((128, n_features)) < density) * rng.integers(1, 4, (128, n_features))
        x = torch.as_tensor(counts, dtype=torch.float32)
        params = [torch.randn(128, n_features) for _ in range(3)]
        row = [
            1e3 * median_seconds(lambda k=kind, x=x, p=params: _likelihood_step(k, x, *p), repeats)
            for kind in ("textbook", "elementwise", "sum")
        ]
        print(f"{n_features:>9} {density:>8.1%} {row[0]:>9.1f} {row[1]:>12.1f} {row[2]:>9.1f}")
    print("   (per-cell: the summed log-likelihood, hand-written backward; what training uses)")


def _likelihood_step(kind, x, logits, dispersion, pi_logits):
    a, b, c = (t.clone().requires_grad_() for t in (logits, dispersion, pi_logits))
    log_mu = 8.0 + F.log_softmax(a, dim=-1)
    log_theta = F.softmax(b, dim=-1)
    if kind == "textbook":
        out = reference_impl.zinb_log_prob(x, log_mu.exp(), log_theta.exp(), c).sum(-1)
    elif kind == "elementwise":
        out = zinb_log_prob(x, log_mu, log_theta, c).sum(-1)
    else:
        out = count_log_prob_sum("zinb", x, log_mu, log_theta, c)
    out.mean().backward()


def real_data_table(epochs, threads, n_cells=None):
    rna, atac, prior = real(n_cells)
    print(f"\n2. SNARE-seq cell lines ({rna.shape[0]} cells, 2000 genes, 27399 peaks), default")
    print(f"   settings, {threads} threads: median s/epoch over {epochs - 1} epochs after a")
    print("   warm-up, the two implementations' epochs interleaved in one process; peak RSS")
    print("   of each in a process of its own (2 epochs)")
    yardstick = _yardstick(rna, atac, prior)
    yard_times = {False: [], True: []}

    def yardstick_epochs():
        # FactVAE trains with large buffers kept in the heap (factvae_sk.utils._malloc); the
        # yardstick is timed under glibc's default policy, and for reference under the same.
        for heap in (False, True):
            with heap_allocations(enabled=heap):
                start = time.perf_counter()
                yardstick.train_epoch()
                yard_times[heap].append(time.perf_counter() - start)

    timer = _EpochTimer(after_epoch=yardstick_epochs)
    FactVAE(max_epochs=epochs, random_state=0, callbacks=[("timer", timer.callback)]).fit(
        rna, atac, prior=prior
    )
    ours = statistics.median(timer.times[1:])
    theirs = statistics.median(yard_times[False][1:])
    theirs_heap = statistics.median(yard_times[True][1:])
    spec = ["real", n_cells]
    rss = {impl: in_subprocess(impl, spec, 2, threads) for impl in ("yardstick", "factvae")}
    print(f"{'implementation':<16} {'s/epoch':>8} {'speed-up':>9} {'peak RSS MB':>12}")
    for name, seconds, result in [
        ("yardstick", theirs, rss["yardstick"]),
        ("yardstick, heap*", theirs_heap, rss["yardstick"]),
        ("FactVAE", ours, rss["factvae"]),
    ]:
        speed_up = theirs / seconds
        print(f"{name:<16} {seconds:>8.3f} {speed_up:>8.1f}x {result['peak_rss_mb']:>12.0f}")
    print(f"   (batching from CSR: {rss['factvae']['batching_share']:.1%} of FactVAE's epoch time)")
    print("   * the yardstick with FactVAE's allocator setting (large buffers kept in the heap)")


def scaling_table(sizes, epochs, threads, cap_gb):
    print(f"\n3. Synthetic sparse data (3 % RNA, 2 % ATAC non-zero), {threads} threads, median")
    print(f"   s/epoch over {epochs - 1} epochs; the yardstick's from its median step time over 5")
    print(f"   steps, and only where its dense arrays need under {cap_gb:g} GB ('-' otherwise)")
    header = (
        f"{'cells':>7} {'genes':>6} {'peaks':>7} {'FactVAE s/ep':>13} {'us/cell/1k peaks':>17} "
        f"{'batching':>9} {'peak RSS MB':>12} {'yardstick s/ep':>15} {'its RSS MB':>11}"
    )
    print(header)
    for n_cells, n_genes, n_peaks in sizes:
        spec = [n_cells, n_genes, n_peaks]
        ours = in_subprocess("factvae", spec, epochs, threads)
        per_unit = 1e6 * ours["s_per_epoch"] / n_cells / (n_peaks / 1000)
        yard = "-", "-"
        if reference_impl.dense_bytes(n_cells, n_genes, n_peaks) < cap_gb * 1e9:
            theirs = in_subprocess("yardstick", spec, epochs, threads)
            yard = f"{theirs['s_per_epoch']:.2f}", f"{theirs['peak_rss_mb']:.0f}"
        print(
            f"{n_cells:>7} {n_genes:>6} {n_peaks:>7} {ours['s_per_epoch']:>13.2f} "
            f"{per_unit:>17.2f} {ours['batching_share']:>9.1%} {ours['peak_rss_mb']:>12.0f} "
            f"{yard[0]:>15} {yard[1]:>11}"
        )


def memory_table(size, threads):
    n_cells, n_genes, n_peaks = size
    print(f"\n4. Memory: FactVAE fit, 1 epoch, {n_cells} cells x {n_genes} genes x {n_peaks} peaks")
    result = in_subprocess("factvae", list(size), 1, threads)
    dense_gb = n_cells * (n_genes + n_peaks) * 4 / 1e9
    print(f"{'peak RSS MB':>12} {'interpreter MB':>15} {'dense counts GB':>16} {'fit s':>7}")
    print(
        f"{result['peak_rss_mb']:>12.0f} {result['base_rss_mb']:>15.0f} {dense_gb:>16.1f} "
        f"{result['fit_s']:>7.0f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--yardstick-cap-gb", type=float, default=4.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
        print(json.dumps(worker(*json.loads(args.worker))))
        return
    torch.set_num_threads(args.threads)
    load_average = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {args.threads} threads, load average {load_average:.1f}")
    if args.quick:
        likelihood_table(repeats=3, sizes=((2000, 0.10), (27399, 0.025)))
        real_data_table(epochs=3, threads=args.threads, n_cells=256)
        sizes = [(250, 500, 5000), (500, 500, 5000), (500, 500, 10000)]
        scaling_table(sizes, epochs=2, threads=args.threads, cap_gb=0.05)
        return
    likelihood_table(repeats=10)
    real_data_table(epochs=6, threads=args.threads)
    sizes = [
        (2500, 2000, 25000),
        (5000, 2000, 25000),
        (10000, 2000, 25000),
        (5000, 2000, 50000),
        (5000, 2000, 100000),
    ]
    scaling_table(sizes, epochs=3, threads=args.threads, cap_gb=args.yardstick_cap_gb)
    memory_table((20000, 4000, 100000), threads=args.threads)


if __name__ == "__main__":
    main()
