"""What the pictures draw: legend order and placement, colours that stay apart, the map's
subsample, and the link tracks (matplotlib's own objects, not just that a file exists)."""

import numpy as np
import pandas as pd
import pytest

from factvae_sk.app._cell_map import cell_map, stratified_subsample

pytest.importorskip("matplotlib")

from matplotlib.patches import Arc  # noqa: E402

from factvae_sk.app._plots import (
    MAX_LEGEND_LABELS,
    _lab,
    categorical_palette,
    cell_map_figure,
    links_figure,
    natural_order,
)


def _min_lab_distance(colours):
    lab = _lab(np.asarray(colours)[:, :3])
    distance = np.linalg.norm(lab[:, None] - lab[None], axis=2)
    np.fill_diagonal(distance, np.inf)
    return distance.min()


def test_lab_conversion_matches_reference_values():
    # CIELAB (D65) of sRGB primaries and white, as published (e.g. by colormath / Bruce Lindbloom).
    expected = {(1, 0, 0): (53.24, 80.09, 67.20), (0, 0, 1): (32.30, 79.19, -107.86)}
    expected[(1, 1, 1)] = (100.0, 0.0, 0.0)
    for rgb, lab in expected.items():
        np.testing.assert_allclose(_lab(np.array([rgb], float))[0], lab, atol=0.1)


def test_palette_stays_distinguishable_up_to_30_labels():
    from matplotlib import colormaps

    assert _min_lab_distance(categorical_palette(30)) > 20
    # What the map used before: tab20's light/dark pairs, 16.6 apart among 14 labels.
    assert _min_lab_distance(colormaps["tab20"].colors[:14]) < 20
    assert np.allclose(categorical_palette(10), colormaps["tab10"].colors)  # familiar first


def test_natural_order_sorts_numbers_numerically():
    assert natural_order(["10", "2", "1", "13", "0", "2"]) == ["0", "1", "2", "10", "13"]
    assert natural_order(["cluster 10", "cluster 2", "B", "A"]) == [
        "A",
        "B",
        "cluster 2",
        "cluster 10",
    ]


def _scatter(n_labels, n_cells=600, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_labels, n_cells)
    labels[:n_labels] = np.arange(n_labels)  # every label present
    return rng.normal(size=(n_cells, 2)) + labels[:, None], labels.astype(str)


def test_legend_lists_labels_in_numeric_order_outside_the_axes():
    coords, labels = _scatter(14)
    fig = cell_map_figure(coords, {"cluster": labels, "again": labels}, "map")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        entries = [text.get_text().split(" ")[0] for text in legend.get_texts()]
        assert entries == [str(i) for i in range(14)]
        box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert box.x0 >= area.x1  # to the right of the panel: covers no cell
        assert box.x1 <= fig.bbox.x1 + 1  # and inside the figure
    # The two panels' legends do not run into the next panel either.
    left_legend = fig.axes[0].get_legend().get_window_extent(renderer)
    assert left_legend.x1 <= fig.axes[1].get_window_extent(renderer).x0


def test_many_labels_are_written_on_the_map_instead_of_a_legend():
    coords, labels = _scatter(MAX_LEGEND_LABELS + 5, n_cells=2000)
    fig = cell_map_figure(coords, {"cluster": labels}, "map")
    ax = fig.axes[0]
    assert ax.get_legend() is None
    assert sorted(text.get_text() for text in ax.texts) == sorted(set(labels))


def test_cells_off_a_subsampled_map_are_not_drawn():
    coords, labels = _scatter(3)
    coords[::2] = np.nan
    fig = cell_map_figure(coords, {"cluster": labels}, "map", note="subsample")
    drawn = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert drawn == np.isfinite(coords).all(axis=1).sum()
    assert "subsample" in fig._suptitle.get_text()


def test_stratified_subsample_keeps_every_group_in_proportion():
    groups = np.repeat(["a", "b", "c"], [900, 90, 10])
    chosen = stratified_subsample(groups, 100, random_state=0)
    assert len(chosen) == 100 and len(np.unique(chosen)) == 100
    counts = pd.Series(groups[chosen]).value_counts()
    assert counts.to_dict() == {"a": 90, "b": 9, "c": 1}
    rare = np.repeat(["a", "b"], [999, 1])
    assert "b" in rare[stratified_subsample(rare, 10, random_state=0)]  # never dropped
    np.testing.assert_array_equal(chosen, stratified_subsample(groups, 100, random_state=0))


def test_cell_map_uses_a_subsample_above_the_threshold():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(400, 5)).astype(np.float32)
    groups = np.repeat([0, 1], 200)
    small = cell_map(Z, groups, method="tsne", max_cells=1000)
    assert not small.subsampled and np.isfinite(small.coords).all()
    big = cell_map(Z, groups, method="tsne", max_cells=150)
    assert big.subsampled and len(big.mapped) == 150
    assert np.isfinite(big.coords[big.mapped]).all()
    assert np.isnan(np.delete(big.coords, big.mapped, axis=0)).all()
    with pytest.raises(ValueError, match="method"):
        cell_map(Z, method="pca")


def test_link_tracks_draw_one_arc_per_link():
    genes = pd.DataFrame(
        {
            "gene": ["A", "B", "C"],
            "chrom": ["chr1", "chr2", None],
            "start": [10_000, 50_000, np.nan],
            "end": [20_000, 60_000, np.nan],
            "strand": ["+", "-", None],
        }
    )
    peaks = pd.DataFrame(
        {
            "peak": ["p0", "p1", "p2", "p3"],
            "chrom": ["chr1", "chr1", "chr2", "chr2"],
            "start": [5_000, 30_000, 40_000, 200_000],
            "end": [5_500, 30_500, 40_500, 200_500],
        }
    )
    links = pd.DataFrame({"gene": ["A", "A", "B"], "peak": ["p0", "p1", "p2"]})
    links["score"] = [0.9, 0.1, 0.5]
    fig = links_figure(links, genes, peaks, ["A", "B", "C"], window=50_000)
    tracks = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(tracks) == 2  # C has no coordinates
    arcs = [[p for p in ax.patches if isinstance(p, Arc)] for ax in tracks]
    assert [len(a) for a in arcs] == [2, 1]
    # The best link gets the colour at the top of the scale, the worst the bottom.
    colours = [arc.get_edgecolor() for arc in arcs[0]]
    assert colours[0] != colours[1]
    assert "A" in tracks[0].get_title(loc="left") and "2 links" in tracks[0].get_title(loc="left")
