"""The layout shows the pipeline, and imports only point down it.

Every module of collm belongs to a layer (LAYERS: lowest first). A module may
import from its own layer's packages and from lower layers, never from a
higher one; and no chain of imports, at module level or inside functions,
comes back to where it started. The test reads the source with `ast`: an
import hidden inside a function counts like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "collm"

LAYERS = [
    ["collm.errors", "collm.version", "collm.types", "collm.flops", "collm.files"],
    ["collm.prompts", "collm.answers", "collm.vote", "collm.budget", "collm.datasets", "collm.models"],
    ["collm.bank", "collm.verifiers"],
    ["collm.backends"],
    ["collm.samplers"],
    ["collm.difficulty"],
    ["collm.allocation"],
    ["collm.strategies"],
    ["collm.policies"],
    ["collm.pipeline"],
    ["collm.api", "collm.report", "collm.plan"],
    ["collm.serve"],
    ["collm.cli", "collm.__main__", "collm"],
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit(mod: str) -> str:
    """The layer unit a module belongs to: the longest LAYERS entry that prefixes it."""
    best = None
    for layer in LAYERS:
        for u in layer:
            if (mod == u or mod.startswith(u + ".")) and (best is None or len(u) > len(best)):
                best = u
    assert best is not None, f"{mod} is in no layer of LAYERS"
    return best


LEVEL = {u: i for i, layer in enumerate(LAYERS) for u in layer}


def imports(path: Path, mod: str) -> set[str]:
    """The collm modules `mod` imports anywhere in its file."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "collm"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "collm":
                continue
            for a in node.names:  # `from collm.x import y` may import the module collm.x.y
                sub = f"{base}.{a.name}"
                out.add(sub if (ROOT.parent / (sub.replace(".", "/") + ".py")).is_file()
                        or (ROOT.parent / sub.replace(".", "/")).is_dir() else base)
    out.discard(mod)
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p, module_name(p)) for p in sorted(ROOT.rglob("*.py"))}


def test_imports_only_point_down_the_layers():
    bad = []
    for mod, deps in graph().items():
        for d in deps:
            if LEVEL[unit(d)] > LEVEL[unit(mod)]:
                bad.append(f"{mod} imports {d} ({unit(d)} is above {unit(mod)})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if d not in g:
                continue
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]) if d in stack else f"{m} -> {d}")
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    # a package's __init__ re-exporting its own modules is no cycle of the code's logic
    cycles = [c for c in cycles if not _init_reexport(c)]
    assert not cycles, "\n".join(cycles)


def _init_reexport(cycle: str) -> bool:
    mods = cycle.split(" -> ")
    return len(mods) == 3 and mods[0] == mods[2] and (mods[1].startswith(mods[0] + ".") or mods[0].startswith(mods[1] + "."))


def test_the_layers_name_every_package():
    names = {module_name(p).split(".")[1] for p in ROOT.rglob("*.py") if module_name(p) != "collm"}
    listed = {u.split(".")[1] for layer in LAYERS for u in layer if "." in u}
    assert names <= listed, f"packages in no layer: {sorted(names - listed)}"
