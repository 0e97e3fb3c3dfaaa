"""
Gene-peak links against CRISPRi screens
=======================================

K562 is one of the four cell lines of the bundled SNARE-seq data, and CRISPR interference
screens in K562 tested which candidate enhancers regulate which genes (the ENCODE
"training_K562" table: Nasser et al. 2021, Gasperini et al. 2019, Schraivogel et al. 2020).
This example scores every tested element-gene pair that a SNARE-seq peak overlaps with
``regulatory_links``: with coordinates its default ranks by the link model shipped with the
package (a power-law contact in the distance to the TSS, the number of expressed genes whose
TSS is closer to the element than the gene's, the model correlation of the two decoders and
the embeddings' cosine), beside the links of the K562 cells alone (``groups=`` and
``group="K562"``: the same model plus how much more open the element is in K562 than in all
cells), the co-variation score ``"correlation"`` alone and distance alone, the baseline that
link predictors are measured against on these screens.

Distance alone is a strong ranking here, and co-variation alone is far below it. The
default, which weighs the model's co-variation and the genomic context with distance, ranks
a little above distance (leave-chromosomes-out cross-validation, 100 epochs, two fits: AUPRC
0.452 and 0.435 against 0.425, AUROC 0.924 and 0.928 against 0.908, inside the bootstrap
intervals; ``benchmarks/README.md``). The K562 ranking is level with it overall and ranks
the distal elements (10-100 kb) better on both fits. The model was fitted on this same
table (under cross-validation for the numbers above), so the in-sample curve drawn here is
a picture of what the score does, not a held-out measurement.

The table is not shipped inside the package: it is read from ``shared/data/crispri_k562/``
beside the repository (or from the path in ``FACTVAE_CRISPRI_TABLE``). Without it the example
says so and draws nothing else.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.metrics import average_precision_score, precision_recall_curve

from factvae_sk import FactVAE, gene_peak_prior, load_snare_cellline
from factvae_sk.links import expressed_genes

epochs = int(os.environ.get("FACTVAE_EXAMPLE_EPOCHS", 20))
name = "EPCrisprBenchmark_combined_data.training_K562.GRCh38.tsv.gz"
# ``shared/data/crispri_k562/`` beside the repository: look in the folders above this one.
script = Path(globals().get("__file__", Path.cwd() / "plot_links_crispri.py")).resolve()
folders = [*Path.cwd().parents, *script.parents]
candidates = [folder / "shared/data/crispri_k562" / name for folder in folders]
table_path = os.environ.get("FACTVAE_CRISPRI_TABLE") or next(
    (path for path in candidates if path.exists()), Path("../shared/data/crispri_k562") / name
)
table_path = Path(table_path)


def skipped(path):
    """The table is missing: say so, in the log and in the picture."""
    print(f"{path} not found: the CRISPRi table does not ship with the package; skipped.")
    fig, ax = plt.subplots(figsize=(5, 1.5))
    ax.text(0.5, 0.5, "CRISPRi table not found: example skipped", ha="center", va="center")
    ax.axis("off")
    plt.show()


def score_screens(path):
    """Fit FactVAE on the cell lines and score every tested pair that a peak overlaps."""
    # The screens' valid pairs, and the SNARE-seq genes they measured.
    screens = pd.read_csv(path, sep="\t")
    screens = screens[screens.ValidConnection.astype(str).str.upper() == "TRUE"]
    screens["regulated"] = screens.Regulated.astype(str).str.upper() == "TRUE"
    data = load_snare_cellline()
    tested = data.genes.gene.isin(screens.measuredGeneSymbol)
    genes = (data.genes.highly_variable | tested).to_numpy()
    X_rna, X_atac = data.rna[:, genes], data.atac
    gene_table = data.genes[genes].reset_index(drop=True)
    prior = gene_peak_prior(gene_table, data.peaks)
    print(f"{len(screens)} tested pairs ({screens.regulated.sum()} regulated); {genes.sum()} genes")

    # Each tested element takes the score of the peaks overlapping it (the best one).
    model = FactVAE(max_epochs=epochs, random_state=0).fit(X_rna, X_atac, prior=prior)
    gene_index = pd.Series(np.arange(len(gene_table)), index=gene_table.gene)
    rows, cols, pair_of = [], [], []
    for chrom, peaks in data.peaks.groupby("chrom"):
        on = screens[screens.chrom == chrom]
        for i, element in zip(on.index, on.itertuples(), strict=True):
            hit = peaks[(peaks.start < element.chromEnd) & (peaks.end > element.chromStart)]
            if element.measuredGeneSymbol in gene_index and len(hit):
                for peak in hit.index:
                    rows.append(gene_index[element.measuredGeneSymbol])
                    cols.append(peak)
                    pair_of.append(i)
    pairs = sp.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(len(gene_table), X_atac.shape[1])
    )
    names = pd.MultiIndex.from_arrays(
        [gene_table.gene.to_numpy()[rows], data.peaks.peak.to_numpy()[cols]]
    )
    scored = screens.loc[sorted(set(pair_of))].copy()
    # Every annotated gene counts for the genomic context, the expressed ones (from every
    # gene's counts) for the expressed genes closer to an element than its gene.
    annotation = data.genes.assign(expressed=expressed_genes(data.rna))
    k562 = dict(groups=data.cells.cell_line.to_numpy(), group="K562")
    for column, score, cells in (
        ("default", None, {}),
        ("K562 cells", None, k562),
        ("correlation", "correlation", {}),
    ):
        links = model.regulatory_links(
            pairs,
            gene_table=gene_table,
            peak_table=data.peaks,
            score=score,
            annotation=annotation,
            **cells,
        )
        values = links.set_index(["gene", "peak"]).score.reindex(names).to_numpy()
        scored[column] = pd.Series(values).groupby(np.array(pair_of)).max()
    print(f"{len(scored)} pairs overlap a peak; {scored.regulated.sum()} of them regulated")
    return scored


def draw(scored):
    """The default score against distance, and precision-recall of three rankings."""
    distance = scored.distanceToTSS.abs().to_numpy()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for regulated, colour in ((False, "lightgrey"), (True, "tab:red")):
        mask = scored.regulated.to_numpy() == regulated
        label = "regulated" if regulated else "not regulated"
        axes[0].scatter(distance[mask] + 1, scored["default"][mask], s=6, c=colour, label=label)
    axes[0].set(xscale="log", xlabel="distance to the TSS (bp)", ylabel="default link score")
    axes[0].legend(frameon=False, markerscale=2)
    rankings = {
        "default (link model)": scored["default"],
        "K562 cells (group=)": scored["K562 cells"],
        '"correlation" alone': scored["correlation"],
        "distance alone": -distance,
    }
    for name, ranking in rankings.items():
        precision, recall, _ = precision_recall_curve(scored.regulated, ranking)
        auprc = average_precision_score(scored.regulated, ranking)
        print(f"{name}: AUPRC {auprc:.3f} (chance {scored.regulated.mean():.3f})")
        axes[1].plot(recall, precision, label=f"{name} (AUPRC {auprc:.3f})")
    axes[1].axhline(scored.regulated.mean(), color="grey", lw=0.8, ls=":", label="chance")
    axes[1].set(xlabel="recall", ylabel="precision", title=f"{epochs} epochs")
    axes[1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    plt.show()


# %%
# Run it: fit, score the screens' pairs, draw.
if table_path.exists():
    draw(score_screens(table_path))
else:
    skipped(table_path)
