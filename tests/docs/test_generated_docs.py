"""Generated docs match the code they describe."""

from __future__ import annotations

from pathlib import Path

from tether import _defaults_doc
from tether.pipeline.breaker import Breaker
from tether.pipeline.retry import Retry

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_page_is_current() -> None:
    """docs/defaults.md is exactly what the option classes generate (run --write after a change)."""
    assert (ROOT / "docs" / "defaults.md").read_text(encoding="utf-8") == _defaults_doc.render()


def test_defaults_page_reads_values_from_the_classes() -> None:
    """The page shows the classes' own default numbers, so changing one changes the page."""
    text = _defaults_doc.render()
    assert f"| `attempts` | {Retry.DEFAULT_ATTEMPTS} |" in text
    assert f"| `open_for` | {Breaker.DEFAULT_OPEN_FOR} |" in text


def test_check_mode_reports_a_stale_page(tmp_path: Path) -> None:
    """--check exits 1 for a stale page and 0 for a current one."""
    stale = tmp_path / "defaults.md"
    stale.write_text("old", encoding="utf-8")
    assert _defaults_doc.main(["--check", "--path", str(stale)]) == 1
    assert _defaults_doc.main(["--write", "--path", str(stale)]) == 0
    assert _defaults_doc.main(["--check", "--path", str(stale)]) == 0
