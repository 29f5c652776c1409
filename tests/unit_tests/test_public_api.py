"""Every public name of the package is documented."""

from __future__ import annotations

import inspect

import pytest

import langchain_stream


@pytest.mark.parametrize("name", langchain_stream.__all__)
def test_every_public_name_has_a_docstring(name: str) -> None:
    value = getattr(langchain_stream, name)
    doc = inspect.getdoc(value)
    assert doc and doc.strip(), f"langchain_stream.{name} has no docstring"
    # A docstring inherited from a base class (or `object`) does not describe this name.
    own = getattr(value, "__doc__", None)
    assert own and own.strip(), f"langchain_stream.{name} has only an inherited docstring"
