"""The import graph between the parts of ``domadapt`` (subpackages and top-level modules) goes one way.

Every import counts, also the ones inside functions (a lazy import is still an arrow). ``LAYERS`` lists the parts from
the bottom up; a part may import parts of lower layers, and a part of its own layer if that one does not import it
back. A new part must be placed here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "domadapt"

LAYERS: list[set[str]] = [
    {"structures", "errors", "quiet", "schedules", "distributed", "fingerprint", "released_sgd",
     "memory_format", "listing", "checkpoint_file", "class_path", "lazy"},
    {"io", "layers"},
    {"losses", "models"},
    {"data"},
    {"evaluation", "checkpointing", "export"},
    {"pseudo"},
    {"methods"},
    {"lightning_cli"},
    {"multiseed", "demo"},
    {"pipeline"},
    {"recipes"},
    {"cli"},
    {"__init__", "__main__"},
]


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def imports() -> dict[str, set[str]]:
    """``{part: parts it imports}`` over every ``.py`` file of the package."""
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"}
    graph: dict[str, set[str]] = {}
    for f in PACKAGE.rglob("*.py"):
        here = part_of(f)
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "domadapt" else [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                bits = name.split(".")
                if bits[0] == "domadapt" and len(bits) > 1 and bits[1] in parts and bits[1] != here:
                    graph.setdefault(here, set()).add(bits[1])
    return graph


def test_every_part_has_a_layer():
    placed = set().union(*LAYERS)
    found = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"}
    assert found <= placed, f"place these in LAYERS: {sorted(found - placed)}"


def test_imports_only_go_down():
    rank = {part: i for i, layer in enumerate(LAYERS) for part in layer}
    graph = imports()
    upward = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if rank[b] > rank[a])
    both_ways = sorted(f"{a} <-> {b}" for a, targets in graph.items() for b in targets if a < b and a in graph.get(b, ()))
    assert not upward and not both_ways, upward + both_ways  # parts of one layer may use each other one way only


def test_data_reaches_nothing_above_it():
    assert not imports().get("data", set()) & {"pipeline", "methods", "pseudo", "evaluation", "recipes", "cli"}
