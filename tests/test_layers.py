"""The core package's layering: each room imports only the rooms below it.

Every import is read, those inside functions too (a lazy import that points up
is still a dependency), so that a module's room says what it may depend on.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "shared" / "buildsync"

# Lowest first. The base modules (and proto) may import only each other; each
# room may import its own modules, the base, and every room before it.
ROOMS = ("rules", "store", "remote", "ending", "stages", "edge")
BASE = ("errors", "logs", "metrics", "env", "wire", "nesting", "proto")


def room_of(module: str) -> str:
    """`buildsync.store.model` → `store`; `buildsync.errors` → `base`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else "base"


def allowed(room: str) -> set[str]:
    if room == "base":
        return {"base"}
    return {"base", *ROOMS[: ROOMS.index(room) + 1]}


def modules() -> list[pathlib.Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_pb2" not in p.name and p.name != "__main__.py")


def module_name(path: pathlib.Path, package: pathlib.Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: pathlib.Path, root: pathlib.Path = PACKAGE) -> list[tuple[int, str]]:
    """Every buildsync module `path` imports, with its line."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" for alias in node.names] if base == "buildsync" else [base]
            found += [(node.lineno, target) for target in targets]
    return [(line, name) for line, name in found if name == "buildsync" or name.startswith("buildsync.")]


def violations(path: pathlib.Path, root: pathlib.Path = PACKAGE) -> list[str]:
    room = room_of(module_name(path, root))
    return [
        f"{path.relative_to(root.parent)}:{line} ({room}) imports {name} ({room_of(name)})"
        for line, name in imported(path, root)
        if room_of(name) not in allowed(room)
    ]


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_its_room_and_the_rooms_below(path):
    assert violations(path) == []


def test_every_module_lives_in_a_room_or_the_base():
    loose = [module_name(p) for p in modules() if room_of(module_name(p)) == "base"]
    assert {name.split(".")[1] for name in loose if name != "buildsync"} <= set(BASE)


def test_an_import_that_points_up_is_caught(tmp_path):
    rules = tmp_path / "buildsync" / "rules"
    rules.mkdir(parents=True)
    offender = rules / "bad.py"
    offender.write_text("def f():\n    from buildsync.stages import sync\n")
    assert violations(offender, tmp_path / "buildsync") == [
        "buildsync/rules/bad.py:2 (rules) imports buildsync.stages (stages)"
    ]


def test_every_room_has_an_index():
    for room in ROOMS:
        docstring = ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text()))
        assert docstring and "May import" in docstring, room


def test_the_readme_layout_names_every_module_in_its_room():
    readme = (PACKAGE.parent.parent / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    rows = {line.split("|")[1].strip(" `/"): line for line in layout.splitlines() if line.startswith("| ")}
    missing = [
        module_name(p)
        for p in modules()
        if p.name != "__init__.py"
        and f"`{p.stem}`" not in rows.get(room_of(module_name(p)), "")
        and "proto" not in p.parts
    ]
    assert missing == []
