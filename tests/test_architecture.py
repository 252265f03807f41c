"""The house rules of docs/ARCHITECTURE.md, checked on the source: each wing imports only
downward, never another wing's private names, and no module grows past its size budget."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import cowsim

PKG = Path(cowsim.__file__).resolve().parent

DOOR = "door"
#: wing -> the wings it may import (docs/ARCHITECTURE.md, "What may import what").
ALLOWED: Dict[str, Set[str]] = {
    DOOR: {DOOR},
    "cost": {DOOR, "cost"},
    "host": {DOOR, "cost", "host"},
    "validation": {DOOR, "host", "validation"},
    "experiments": {DOOR, "cost", "experiments"},
    "reference": {DOOR, "reference"},
    "cli": {DOOR, "cost", "host", "validation", "experiments", "cli"},
}
#: the door's modules other wings may import by name (the rest through ``cowsim``'s public names).
DOOR_PUBLIC = {"cowsim", "cowsim.machine", "cowsim.process", "cowsim.errors", "cowsim.units"}
MAX_LINES = 600


def wing_of(module: str) -> str:
    if module == "cowsim.__main__":  # `python -m cowsim`: the command line's entry point
        return "cli"
    parts = module.split(".")
    if len(parts) > 1 and (PKG / parts[1]).is_dir():
        return parts[1]
    return DOOR


def modules() -> Dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def imports(name: str, path: Path) -> List[Tuple[str, int]]:
    """(absolute module imported, line) of every cowsim import in the module, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("cowsim"):
                for alias in node.names:  # `from . import x` imports the module x
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in MODULES else target, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("cowsim")]
    return found


MODULES = modules()


def test_each_wing_imports_only_downward() -> None:
    bad = []
    for name, path in MODULES.items():
        wing = wing_of(name)
        for target, line in imports(name, path):
            if target == "cowsim._core" and name != "cowsim._ffi":
                bad.append(f"{name}:{line} imports the core directly (only cowsim._ffi may)")
            elif wing_of(target) not in ALLOWED[wing]:
                bad.append(f"{name}:{line} ({wing}) imports {target} ({wing_of(target)})")
    assert not bad, "\n".join(bad)


def test_no_private_reach_ins_across_wings() -> None:
    bad = []
    for name, path in MODULES.items():
        wing = wing_of(name)
        for target, line in imports(name, path):
            tw = wing_of(target)
            if tw == wing:
                continue
            if tw == DOOR and target not in DOOR_PUBLIC:
                bad.append(f"{name}:{line} reaches into the door's private {target}")
            elif tw != DOOR and any(p.startswith("_") for p in target.split(".")[2:]):
                bad.append(f"{name}:{line} reaches into {target}")
    assert not bad, "\n".join(bad)


def test_argparse_lives_in_the_cli_only() -> None:
    users = [n for n, p in MODULES.items() if "argparse" in p.read_text(encoding="utf-8") and wing_of(n) != "cli"]
    assert users == []


def test_modules_stay_small() -> None:
    big = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in MODULES.items()}
    assert {n: k for n, k in big.items() if k > MAX_LINES} == {}


def test_the_door_never_imports_a_wing() -> None:
    assert ALLOWED[DOOR] == {DOOR}
    assert {wing_of(n) for n in MODULES} == set(ALLOWED)
