"""Sphinx configuration of the factvae_sk documentation.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` from the repository
root (``pip install -e ".[docs]"`` first). ``FACTVAE_EXAMPLE_EPOCHS`` shortens the gallery's
fits.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import factvae_sk  # noqa: E402

project = "factvae_sk"
author = "factvae_sk developers"
copyright = "factvae_sk developers"
release = factvae_sk.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "gallery/*.md5"]
templates_path = ["_templates"]

# Every cross-reference must resolve: a broken one is a warning, and -W makes it an error.
nitpicky = True
# Fitted attributes are listed in FactVAE's "Attributes" section, which has no link targets.
nitpick_ignore = [
    ("py:attr", name) for name in ("atac_peak_bias_", "rna_to_atac_", "code_covariance_")
]
nitpick_ignore_regex = [
    # numpydoc's type words, not names.
    ("py:class", r"(array-like|sparse matrix|sparse|optional|default.*|callable|path-like)"),
    ("py:class", r"(of shape .*|shape .*|\(.*\)|.*\.\.\.)"),
    ("py:class", r"(int|float|str|bool|dict|list|tuple|None|True|False|object|iterable)\b.*"),
]

autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

html_theme = "pydata_sphinx_theme"
html_title = f"factvae_sk {release}"
html_theme_options = {"navigation_with_keys": False}

epochs = os.environ.get("FACTVAE_EXAMPLE_EPOCHS")
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "gallery",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(__init__|quickstart|distributed_fit)\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "plot_gallery": "True",
    "abort_on_example_error": True,
}

# --- cross-references ------------------------------------------------------------------------
# Docstrings name public objects the short way (``FactVAE.fit``, ``read_gtf_genes``): resolve
# those against the package's public names. Names inside private modules (``factvae_sk.data._io``)
# are implementation, not API pages, and other libraries have no inventory here (the docs build
# offline): both are shown as code, not links. Any other target that resolves nowhere stays a
# warning, which -W turns into an error.
from docutils import nodes  # noqa: E402

PUBLIC_PREFIXES = [
    "factvae_sk.",
    "factvae_sk.FactVAE.",
    *(
        f"factvae_sk.{module}."
        for module in ("motifs", "anndata", "links", "prior", "gtf", "datasets", "cli")
    ),
    "factvae_sk.exceptions.",
    "factvae_sk.hvg.",
]
EXTERNAL = ("sklearn", "skorch", "numpy", "scipy", "pandas", "torch", "anndata", "mudata", "joblib")


def _missing_reference(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    domain = env.get_domain("py")
    if not target.startswith("factvae_sk."):
        for prefix in PUBLIC_PREFIXES:
            found = domain.resolve_xref(
                env,
                node.get("refdoc"),
                app.builder,
                node.get("reftype"),
                prefix + target,
                node,
                contnode,
            )
            if found is not None:
                return found
    private = any(part.startswith("_") and part != "__version__" for part in target.split("."))
    if private or target.split(".")[0] in EXTERNAL:
        return contnode if isinstance(contnode, nodes.literal) else nodes.literal(text=target)
    return None


def setup(app):
    app.connect("missing-reference", _missing_reference)
