"""Pictures of a fit: the loss curves and a 2-D map of the cells (matplotlib, optional)."""

import numpy as np
import pandas as pd

LOSS_TERMS = {
    "train_loss": "total loss",
    "nll_rna": "RNA NLL",
    "kl_rna": "RNA KL",
    "nll_atac": "ATAC NLL",
    "kl_atac": "ATAC KL",
    "prior": "prior loss",
    "distill": "distillation loss",
    "mmd": "MMD across samples",
}


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, and none is opened
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_losses(history, path):
    """One panel per loss term of the skorch ``history``, against the epoch."""
    plt = _pyplot()
    terms = [key for key in LOSS_TERMS if key in history[-1]]
    n_cols = min(4, len(terms))
    n_rows = -(-len(terms) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 2.8 * n_rows), squeeze=False)
    epochs = np.asarray(history[:, "epoch"])
    for ax, key in zip(axes.flat, terms, strict=False):
        values = np.asarray(history[:, key], dtype=float)
        ax.plot(epochs, values, color="tab:blue", lw=1.2)
        # Positive terms spanning orders of magnitude read better on a log axis.
        if (values > 0).all() and values.max() > 20 * values.min():
            ax.set_yscale("log")
        ax.set_title(LOSS_TERMS[key], fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        _integer_ticks(ax)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(terms) :]:
        ax.axis("off")
    fig.suptitle("FactVAE training: per-epoch mean of each loss term", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


# Above this many labels a legend is unreadable: the labels go on the map at their centroids.
MAX_LEGEND_LABELS = 30


def natural_order(labels):
    """Distinct labels in natural order: numbers numerically ("2" before "10"), then text
    with embedded numbers compared by value ("cluster 2" before "cluster 10")."""
    import re

    def key(label):
        parts = re.split(r"(\d+(?:\.\d+)?)", str(label))
        return [(0, float(part), "") if i % 2 else (1, 0.0, part) for i, part in enumerate(parts)]

    return sorted(np.unique(np.asarray(labels).astype(str)), key=key)


def categorical_palette(n):
    """``n`` distinguishable colours (RGB in 0..1): matplotlib's tab10 first, then colours
    chosen one by one to be as far as possible (CIELAB distance) from all chosen so far,
    glasbey-style, among mid-light sRGB colours."""
    return _palette(max(int(n), 0))[:n]


def _palette(n):
    from matplotlib import colormaps

    chosen = [np.asarray(c[:3]) for c in colormaps["tab10"].colors][: max(n, 1)]
    if n <= len(chosen):
        return np.array(chosen)
    levels = np.linspace(0.0, 1.0, 16)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    lab = _lab(grid)
    # Too dark or too light colours vanish against black text or the white background.
    keep = (lab[:, 0] > 30) & (lab[:, 0] < 85)
    grid, lab = grid[keep], lab[keep]
    distance = np.min([np.linalg.norm(lab - _lab(c[None])[0], axis=1) for c in chosen], axis=0)
    while len(chosen) < n:
        best = int(np.argmax(distance))
        chosen.append(grid[best])
        distance = np.minimum(distance, np.linalg.norm(lab - lab[best], axis=1))
    return np.array(chosen)


def _lab(rgb):
    """sRGB (0..1) to CIELAB (D65)."""
    rgb = np.asarray(rgb, dtype=float)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array(
        [[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]]
    )
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack(
        [116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1
    )


def cell_map_figure(coords, panels, title, *, method="t-SNE", note=None):
    """The cell map as a matplotlib figure: one panel per labelling, legends outside the axes.

    Cells with NaN coordinates (left off a subsampled map) are not drawn. Up to
    ``MAX_LEGEND_LABELS`` labels get a legend to the right of the panel (in columns of at most
    20 entries); more are written on the map at their cells' median position.
    """
    plt = _pyplot()
    on_map = np.isfinite(coords).all(axis=1)
    n_labels = max(len(natural_order(labels)) for labels in panels.values())
    columns = -(-min(n_labels, MAX_LEGEND_LABELS) // 20)
    width = 4.6 + (0 if n_labels > MAX_LEGEND_LABELS else 1.6 * columns)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(width * len(panels), 4.8), squeeze=False, layout="constrained"
    )
    for ax, (name, labels) in zip(axes.flat, panels.items(), strict=True):
        labels = np.asarray(labels).astype(str)
        categories = natural_order(labels)
        colours = categorical_palette(len(categories))
        for category, colour in zip(categories, colours, strict=True):
            mask = (labels == category) & on_map
            ax.scatter(
                coords[mask, 0],
                coords[mask, 1],
                s=6 if on_map.sum() < 20_000 else 1,
                color=colour,
                label=f"{category} ({mask.sum()})",
                alpha=0.8,
                linewidths=0,
                rasterized=True,
            )
            if len(categories) > MAX_LEGEND_LABELS and mask.any():
                x, y = np.median(coords[mask], axis=0)
                ax.annotate(category, (x, y), fontsize=6, ha="center", va="center")
        ax.set_title(f"coloured by {name}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{method} 1", fontsize=9)
        ax.set_ylabel(f"{method} 2", fontsize=9)
        if len(categories) <= MAX_LEGEND_LABELS:
            ax.legend(
                fontsize=7,
                markerscale=2.5,
                frameon=False,
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                borderaxespad=0.0,
                ncols=-(-len(categories) // 20),
            )
    fig.suptitle(title if note is None else f"{title}\n{note}", fontsize=11)
    return fig


def plot_cell_map(coords, panels, path, title, *, method="t-SNE", note=None):
    """Write :func:`cell_map_figure` to ``path``."""
    fig = cell_map_figure(coords, panels, title, method=method, note=note)
    _save(fig, path)


def _save(fig, path):
    plt = _pyplot()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def links_figure(links, gene_table, peak_table, genes, *, window, score_name="score"):
    """Genome-track view of the regulatory links of a few genes, one row per gene.

    Each row shows the gene body (arrow: strand) on its chromosome, every peak within
    ``window`` bp of its TSS (grey ticks), and an arc from the TSS to each linked peak,
    coloured by the link's score (as in Signac's ``CoveragePlot`` / ArchR's
    ``plotBrowserTrack`` link tracks).

    Parameters
    ----------
    links : DataFrame
        ``gene``, ``peak``, ``score`` columns (names as in the tables).
    gene_table : DataFrame
        ``gene``, ``chrom``, ``start``, ``end``, ``strand`` (0-based half-open).
    peak_table : DataFrame
        ``peak``, ``chrom``, ``start``, ``end``.
    genes : sequence of str
        The genes to draw (those without coordinates are skipped).
    window : int
        Half-width of the region around each TSS.
    """
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.patches import Arc, FancyArrow, Rectangle
    from matplotlib.ticker import FuncFormatter

    plt = _pyplot()
    gene_rows = gene_table.drop_duplicates("gene").set_index("gene")
    genes = [g for g in genes if g in gene_rows.index and pd.notna(gene_rows.loc[g, "start"])]
    scores = links["score"].to_numpy(dtype=float)
    norm = Normalize(*(np.nanpercentile(scores, [2, 98]) if len(scores) else (0.0, 1.0)))
    cmap = colormaps["viridis"]
    fig, axes = plt.subplots(
        max(len(genes), 1),
        1,
        figsize=(8.0, 1.9 * max(len(genes), 1)),
        squeeze=False,
        layout="constrained",
    )
    peak_rows = peak_table.set_index("peak")
    for ax, gene in zip(axes[:, 0], genes, strict=False):
        row = gene_rows.loc[gene]
        start, end = int(row["start"]), int(row["end"])
        tss = start if row["strand"] != "-" else end
        lo, hi = tss - window, tss + window
        near = peak_table[
            (peak_table["chrom"] == row["chrom"])
            & (peak_table["end"] > lo)
            & (peak_table["start"] < hi)
        ]
        for p_start, p_end in zip(near["start"], near["end"], strict=True):
            ax.add_patch(
                Rectangle(
                    (p_start, -0.12), max(p_end - p_start, window / 400), 0.1, color="0.6", lw=0
                )
            )
        ax.add_patch(Rectangle((start, -0.3), end - start, 0.1, color="0.15", lw=0))
        direction = 1 if row["strand"] != "-" else -1
        ax.add_patch(
            # The TSS and the direction of transcription, under the gene body.
            FancyArrow(
                tss,
                -0.42,
                direction * window / 10,
                0,
                width=0.04,
                head_width=0.14,
                head_length=window / 40,
                color="0.15",
                length_includes_head=True,
            )
        )
        mine = links[links["gene"] == gene]
        for peak, score in zip(mine["peak"], mine["score"], strict=True):
            middle = (peak_rows.loc[peak, "start"] + peak_rows.loc[peak, "end"]) / 2
            span = abs(middle - tss)
            ax.add_patch(
                Arc(
                    ((middle + tss) / 2, 0.0),
                    span,
                    2 * min(1.0, 0.15 + span / window),
                    theta1=0,
                    theta2=180,
                    color=cmap(norm(score)),
                    lw=1.4,
                )
            )
        ax.set_xlim(lo, hi)
        ax.set_ylim(-0.55, 1.1)
        ax.set_yticks([])
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
        ax.set_title(
            f"{gene}  ({row['chrom']}, {len(mine)} links, {len(near)} peaks within "
            f"{window // 1000} kb)",
            fontsize=9,
            loc="left",
        )
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e6:.2f} Mb"))
    if genes:
        mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(mappable, ax=axes[:, 0], label=f"link {score_name}", shrink=0.8)
    else:
        axes[0, 0].axis("off")
        axes[0, 0].text(0.5, 0.5, "no gene with coordinates to draw", ha="center")
    return fig


def plot_links(links, gene_table, peak_table, genes, path, *, window, score_name="score"):
    """Write :func:`links_figure` to ``path``."""
    _save(
        links_figure(links, gene_table, peak_table, genes, window=window, score_name=score_name),
        path,
    )


def top_motifs(table, n_top):
    """The ``n_top`` motifs most active in each group (by p-value, positive differences)."""
    enriched = table[table.mean_difference > 0]
    chosen = enriched.groupby("group", sort=False).head(n_top).motif
    return list(dict.fromkeys(chosen))


def motif_heatmap_figure(table, n_top=5, source="augmented ATAC"):
    """Mean motif z-score of each group (rows) for the top motifs of every group (columns)."""
    plt = _pyplot()
    motifs = top_motifs(table, n_top)
    groups = natural_order(table.group.astype(str).unique())
    means = table.assign(group=table.group.astype(str)).pivot_table(
        index="group", columns="motif", values="mean_group"
    )
    means = means.reindex(index=groups, columns=motifs)
    width = max(4.0, 0.35 * len(motifs) + 2.5)
    fig, ax = plt.subplots(figsize=(width, max(2.5, 0.35 * len(groups) + 1.8)))
    if not motifs:
        ax.axis("off")
        ax.text(0.5, 0.5, "no motif more active in any group", ha="center")
        return fig
    limit = max(float(np.nanmax(np.abs(means.to_numpy()))), 1e-6)
    image = ax.imshow(means.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(motifs)), motifs, rotation=90, fontsize=7)
    ax.set_yticks(range(len(groups)), groups, fontsize=8)
    fig.colorbar(image, ax=ax, label="mean motif z-score in the group")
    ax.set_title(f"Top {n_top} motifs per group (chromVAR z-scores, {source})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_motif_heatmap(table, path, n_top=5, source="augmented ATAC"):
    """Write :func:`motif_heatmap_figure` of a ``differential_motifs`` table to ``path``."""
    _save(motif_heatmap_figure(table, n_top, source), path)
