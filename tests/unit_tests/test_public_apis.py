"""The package uses only the public APIs of its dependencies: no private module, no private
name imported from one, no private attribute read from a dependency's object."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import langchain_stream

PACKAGE = Path(langchain_stream.__file__).parent
OWN = "langchain_stream"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _trees() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text(), str(path))


def _own_names() -> set[str]:
    """Every name the package defines: its functions, classes, attributes and assignments."""
    names: set[str] = set()
    for _, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


def test_no_private_module_or_name_of_a_dependency_is_imported() -> None:
    found = []
    for where, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] == OWN:
                    continue
                parts = node.module.split(".") + [alias.name for alias in node.names]
                if any(_private(part) for part in parts):
                    found.append(f"{where}:{node.lineno}: from {node.module} import ...")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] != OWN and any(
                        _private(part) for part in alias.name.split(".")
                    ):
                        found.append(f"{where}:{node.lineno}: import {alias.name}")
    assert found == []


def test_no_private_attribute_of_a_dependency_is_read() -> None:
    own = _own_names()
    found = []
    for where, tree in _trees():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and node.attr not in own
                # `sys._getframe`-like helpers of the standard library are not dependencies
                and not (isinstance(node.value, ast.Name) and node.value.id in {"sys", "os"})
            ):
                found.append(f"{where}:{node.lineno}: .{node.attr}")
    assert found == []


def test_the_known_private_reaches_are_gone() -> None:
    source = "\n".join(path.read_text() for path in PACKAGE.rglob("*.py"))
    for reach in ("._internal", "._get_request_payload", "RunnableCallable"):
        assert reach not in source, reach
