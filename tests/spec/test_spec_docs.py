"""docs/spec.md is generated from the models and cannot drift from them."""

from __future__ import annotations

from spec_helpers import REPO, SPECS

from tether.spec import docs


def test_committed_docs_equal_the_generator_output() -> None:
    """docs/spec.md is exactly what python -m tether.spec.docs writes (regenerate it if not)."""
    committed = (REPO / "docs" / "spec.md").read_text(encoding="utf-8")
    assert committed == docs.generate(SPECS / "int-template-filled.yaml")


def test_docs_list_every_key_with_its_enforcement() -> None:
    """Every key appears in a table row with an enforcement state."""
    text = docs.generate(SPECS / "int-template-filled.yaml")
    assert "| `retry.max_attempts` | integer | `5` | yes |" in text
    assert "| `cache.ttl` |" in text
    assert "| `service.environments` |" in text
    assert "| `id` | string | — | informational |" in text


def test_check_mode_reports_drift(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--check exits 1 for a stale file and 0 for a fresh one."""
    stale = tmp_path / "spec.md"
    stale.write_text("old\n", encoding="utf-8")
    example = str(SPECS / "int-template-filled.yaml")
    assert docs.main(["--example", example, "--check", str(stale)]) == 1
    assert docs.main(["--example", example, "--output", str(stale)]) == 0
    assert docs.main(["--example", example, "--check", str(stale)]) == 0
