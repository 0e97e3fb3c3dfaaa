"""Every public name imports from its documented path (the subpackages behind them may move)."""

import importlib

import pytest

PUBLIC = {
    "factvae_sk": [
        "FactVAE",
        "GenePeakPrior",
        "PAPER_SETTINGS",
        "build_gene_peak_prior",
        "gene_peak_prior",
        "load_scicar_kidney",
        "load_snare_cellline",
        "peak_gene_correlation",
        "read_gtf_genes",
        "__version__",
    ],
    "factvae_sk.prior": ["build_gene_peak_prior", "gene_peak_prior", "tss_distance"],
    "factvae_sk.gtf": ["read_gtf_genes"],
    "factvae_sk.datasets": ["load_snare_cellline", "load_scicar_kidney", "read_10x_multiome"],
    "factvae_sk.links": ["peak_gene_correlation", "expressed_genes"],
    "factvae_sk.exceptions": [
        "FactVAEWarning",
        "InputFileError",
        "NonFiniteLossError",
        "ResultTooLargeError",
    ],
    "factvae_sk.motifs": [
        "read_motifs",
        "motif_matches",
        "motif_deviations",
        "differential_motifs",
    ],
    "factvae_sk.anndata": ["read_mudata", "write_results", "fit_inputs_from_mudata"],
    "factvae_sk.cli": ["main"],
    "factvae_sk.hvg": ["highly_variable_genes"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_import_from_their_documented_path(module):
    mod = importlib.import_module(module)
    for name in PUBLIC[module]:
        assert hasattr(mod, name), f"{module}.{name}"
    for name in getattr(mod, "__all__", []):
        assert hasattr(mod, name), f"{module}.__all__ lists {name}, which it lacks"


def test_the_package_lists_what_it_exports():
    import factvae_sk

    assert sorted(factvae_sk.__all__) == sorted(PUBLIC["factvae_sk"])
