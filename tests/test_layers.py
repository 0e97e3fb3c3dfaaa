"""The private subpackages import only the layers below them (docs: Architecture)."""

import ast
from pathlib import Path

import factvae_sk

# Top to bottom; a subpackage may import those after it, never one before it.
LAYERS = ["app", "model", "analysis", "train", "nn", "data", "utils"]
PACKAGE = Path(factvae_sk.__file__).parent


def _imported_layers(path):
    """The subpackages a module imports, from its relative and absolute imports."""
    own = path.relative_to(PACKAGE).parts[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                parts = [own]
            elif node.level >= 2:
                parts = (node.module or "").split(".")
            elif (node.module or "").startswith("factvae_sk."):
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts and parts[0] in LAYERS:
                found.add(parts[0])
            if node.level >= 2 and not node.module:  # from .. import app, model
                found |= {alias.name for alias in node.names if alias.name in LAYERS}
    return found


def test_subpackages_import_only_the_layers_below_them():
    upward = []
    for layer in LAYERS:
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            for target in _imported_layers(path):
                if LAYERS.index(target) < LAYERS.index(layer):
                    upward.append(f"{path.relative_to(PACKAGE)} imports {target}/")
    assert not upward, upward


def test_every_private_module_sits_in_a_subpackage():
    flat = sorted(
        p.name for p in PACKAGE.glob("_*.py") if p.name not in {"__init__.py", "__main__.py"}
    )
    assert flat == ["_legacy.py"]  # the old module paths for pickles, nothing else
