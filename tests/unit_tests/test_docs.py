"""The documentation cannot drift from the code: generated parts are current, references resolve."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from langchain_stream.bench.readme import CLOSE, OPEN, render_block
from langchain_stream.config import Settings, environment_variable

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REPORT = DOCS / "figures" / "report.json"


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _slug(heading: str) -> str:
    # Python-Markdown's toc slug, which the site uses (and GitHub's agrees on these headings).
    text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


@pytest.mark.parametrize("page", ["README.md", "docs/benchmarks.md"])
def test_the_figures_table_is_the_committed_reports(page: str) -> None:
    path = ROOT / page
    text = path.read_text(encoding="utf-8")
    block = text[text.index(OPEN) + len(OPEN) : text.index(CLOSE)].strip()
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    expected = render_block(report, REPORT, path.parent).strip()
    assert block == expected, f"{page} is stale: run `stream bench readme --readme {page}`"


def test_the_configuration_reference_has_a_row_per_setting_with_its_docstring() -> None:
    table = _hooks().settings_table()
    rows = table.splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    for row, (name, field) in zip(rows, Settings.model_fields.items(), strict=True):
        assert row.startswith(f"| `{environment_variable(name)}` |")
        assert field.description and " ".join(field.description.split())[:40] in row


def test_the_configuration_reference_shows_defaults_and_bounds() -> None:
    rows = {row.split(" | ")[0]: row for row in _hooks().settings_table().splitlines()[2:]}
    assert "| `4096` |" in rows["| `STREAM_LOCAL_N_CTX`"]
    assert "(≥ 256)" in rows["| `STREAM_LOCAL_N_CTX`"]
    assert "`auto` \\| `on` \\| `off`" in rows["| `STREAM_LOCAL_EXTRA_BUFFERS`"]
    assert "| unset |" in rows["| `STREAM_CLOUD_MODEL`"]


def test_the_settings_marker_is_replaced_and_other_pages_are_left_alone() -> None:
    hooks = _hooks()
    page = "# Configuration\n\n<!-- settings-table -->\n"
    assert "STREAM_LOCAL_MODEL" in hooks.on_page_markdown(page)
    assert hooks.on_page_markdown("# Other\n") == "# Other\n"


def _design_anchors() -> set[str]:
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_every_design_reference_in_the_code_resolves() -> None:
    anchors = _design_anchors()
    sources = [*(ROOT / "langchain_stream").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    # Numbered section references (the design's name, a space, a section sign and a number)
    # are gone; the pattern is built so that this file does not match itself.
    numbered = re.compile("(DESIGN|design\\.md) " + "§")
    cited = 0
    for source in sources:
        text = source.read_text(encoding="utf-8")
        assert not numbered.search(text), f"{source}: a numbered design reference"
        for anchor in re.findall(r"docs/design\.md#([\w-]+)", text):
            cited += 1
            assert anchor in anchors, f"{source}: docs/design.md#{anchor} is not a heading"
    assert cited > 0


def test_the_readme_keeps_the_two_commands_ci_runs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for marker in ("<!-- main-command -->", "<!-- test-command -->"):
        after = text[text.index(marker) + len(marker) :].lstrip("\n")
        assert after.startswith("```bash\npython3 -m venv .venv && . .venv/bin/activate && ")
