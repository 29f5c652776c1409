"""The package's layers hold (docs/design.md#layers): import-linter's contracts in pyproject.toml.

The second test plants an upward import in a copy of the package and checks the contracts catch
it, so a passing first test means something.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_layer_contract_is_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "langchain_stream", tmp_path / "langchain_stream")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    limits = tmp_path / "langchain_stream" / "relay" / "limits.py"
    limits.write_text(limits.read_text() + "\nimport langchain_stream.graph  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode == 1
    assert "langchain_stream.relay is not allowed to import langchain_stream.graph" in (
        result.stdout
    )
