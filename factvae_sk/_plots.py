"""Pictures of a fit: the loss curves and a 2-D map of the cells (matplotlib, optional)."""

import numpy as np

LOSS_TERMS = {
    "train_loss": "total loss",
    "nll_rna": "RNA NLL",
    "kl_rna": "RNA KL",
    "nll_atac": "ATAC NLL",
    "kl_atac": "ATAC KL",
    "prior": "prior loss",
    "distill": "distillation loss",
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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_cell_map(coords, panels, path, title):
    """Scatter of 2-D cell coordinates, one panel per labelling (e.g. cell line, cluster)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (name, labels) in zip(axes.flat, panels.items(), strict=True):
        labels = np.asarray(labels).astype(str)
        categories = sorted(np.unique(labels))
        cmap = plt.get_cmap("tab10" if len(categories) <= 10 else "tab20")
        for i, category in enumerate(categories):
            mask = labels == category
            ax.scatter(
                coords[mask, 0],
                coords[mask, 1],
                s=6,
                color=cmap(i % cmap.N),
                label=f"{category} ({mask.sum()})",
                alpha=0.8,
                linewidths=0,
            )
        ax.set_title(f"coloured by {name}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("t-SNE 1", fontsize=9)
        ax.set_ylabel("t-SNE 2", fontsize=9)
        ax.legend(fontsize=7, markerscale=2.5, frameon=False, loc="best")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
