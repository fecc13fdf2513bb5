"""The layering of ``../shared/DESIGN.md``, checked on every import in ``src/`` (lazy ones and
``TYPE_CHECKING`` ones included): a module that imports across a forbidden line fails here.

Dependencies flow one way: cli -> registry -> bundle -> formats/safety/schema/environment/
integrity -> manifest -> errors. Formats never import the model, the bundle or the
registry; the safety layer imports no format; nothing imports the CLI; the file layer
(``_fs``) imports only the errors.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "modelkeep"

# (importer prefix, imported prefix, why the line exists)
FORBIDDEN = [
    ("modelkeep._formats", "modelkeep._model", "formats serve; the load sequence builds the Model"),
    ("modelkeep._formats", "modelkeep.onnx.model", "the ONNX Model is built above formats/"),
    ("modelkeep._formats", "modelkeep._bundle", "the bundle sequence calls formats, not back"),
    ("modelkeep._formats", "modelkeep.registry", "formats know nothing of versions"),
    ("modelkeep.safety", "modelkeep._formats", "the safety layer imports no format"),
    ("modelkeep.safety", "modelkeep._model", "the safety layer hands back objects, not Models"),
    ("modelkeep.safety", "modelkeep._bundle", "the safety layer is below the bundle"),
    ("modelkeep.safety", "modelkeep.registry", "the safety layer is below the registry"),
    ("modelkeep.safety", "modelkeep.onnx", "the safety layer is for pickle-based files"),
    ("modelkeep._bundle", "modelkeep.registry", "the bundle layer never imports the registry"),
    ("modelkeep._golden", "modelkeep.registry", "below the registry"),
    ("modelkeep._schema", "modelkeep.registry", "below the registry"),
    ("modelkeep._model", "modelkeep.registry", "below the registry"),
    ("modelkeep.onnx", "modelkeep.registry", "below the registry"),
    ("modelkeep.onnx", "modelkeep._formats", "_formats/onnx.py calls the exporter, not back"),
    ("modelkeep.manifest", "modelkeep._bundle", "the manifest is below everything but errors"),
    ("modelkeep.manifest", "modelkeep._formats", "the manifest is below everything but errors"),
    ("modelkeep.manifest", "modelkeep.safety", "the manifest is below everything but errors"),
    ("modelkeep.", "modelkeep.cli", "nothing imports the CLI"),
]
# The floors built on the core (serving, batch scoring, monitoring) sit above it: the core,
# the formats, the safety layer, ONNX and the registry never import them. The sandbox is a
# wall around the load: only the load entry points (and the floors, and the CLI) call it.
_CORE = [
    "modelkeep.errors",
    "modelkeep.manifest",
    "modelkeep._inputs",
    "modelkeep._schema",
    "modelkeep._golden",
    "modelkeep._model",
    "modelkeep._formats",
    "modelkeep._bundle",
    "modelkeep._conversion",
    "modelkeep.safety",
    "modelkeep.onnx",
    "modelkeep.registry",
]
for _floor in ("modelkeep.serve", "modelkeep.batch", "modelkeep.monitor"):
    FORBIDDEN += [(low, _floor, "the floors are built on the core") for low in _CORE]
    FORBIDDEN.append(("modelkeep._load", _floor, "the load sequence is below the floors"))
FORBIDDEN += [(low, "modelkeep.sandbox", "the sandbox wraps the load") for low in _CORE]
# The load entry points that hand a load to the sandbox (isolate=True), lazily.
SANDBOX_ENTRIES = {"modelkeep._load", "modelkeep.safety.loader"}
# Modules at the bottom, and all they may import of modelkeep.
ONLY = {
    "modelkeep.errors": set(),
    "modelkeep._modes": set(),
    "modelkeep._fs": {"modelkeep.errors"},
}
# Crossings that exist today, each to be removed by issue 12's format-agnostic load
# sequence (REVIEW change 3). Listed exactly: a new crossing fails, and removing one of
# these fails until it is taken off this list.
DEBTS: set[tuple[str, str]] = set()


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # from pkg import module
    return {name for name in found if name.startswith("modelkeep")}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix if prefix.endswith(".") else prefix + ".")


def _edges() -> set[tuple[str, str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    edges: set[tuple[str, str]] = set()
    for module, path in modules.items():
        for name in _imports(path, module):
            # "from modelkeep.x import y": keep y only when it is a module of its own.
            while name not in modules and "." in name and name != "modelkeep":
                name = name.rpartition(".")[0]
            edges.add((module, name))
    return edges


def crossings() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for importer, imported in _edges():
        for low, high, _why in FORBIDDEN:
            if _within(importer, low) and _within(imported, high) and importer != imported:
                if high == "modelkeep.cli" and _within(importer, "modelkeep.cli"):
                    continue
                if importer == "modelkeep.__main__" and high == "modelkeep.cli":
                    continue
                if high == "modelkeep.sandbox" and importer in SANDBOX_ENTRIES:
                    continue
                found.add((importer, imported))
        if importer in ONLY and imported not in ONLY[importer] | {"modelkeep", importer}:
            found.add((importer, imported))
    return found


def test_no_module_imports_across_a_forbidden_line() -> None:
    assert crossings() == DEBTS


def test_the_check_sees_imports_of_every_kind() -> None:
    edges = _edges()
    assert ("modelkeep.cli.verify", "modelkeep._load") in edges  # lazy, inside a function
    assert ("modelkeep._load", "modelkeep._model") in edges  # under TYPE_CHECKING
    assert ("modelkeep.__main__", "modelkeep.cli") in edges
    assert len(edges) > 150
