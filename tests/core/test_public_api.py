"""The public namespace stays small, sorted and complete."""

from __future__ import annotations

import tether


def test_all_is_sorted_case_insensitively_after_constants() -> None:
    """``tether.__all__`` is sorted (constants first), so additions are easy to review."""
    names = [n for n in tether.__all__ if not n.startswith("__")]
    constants = [n for n in names if n.isupper()]
    rest = [n for n in names if not n.isupper()]
    assert names == constants + rest
    assert rest == sorted(rest, key=lambda n: (n[0].islower(), n))


def test_every_public_name_exists_and_nothing_public_is_missing() -> None:
    """Every name in __all__ resolves, and every public top-level object is in __all__."""
    for name in tether.__all__:
        assert hasattr(tether, name), name
    public = {
        n
        for n, v in vars(tether).items()
        if not n.startswith("_") and not getattr(v, "__module__", "tether").startswith("__")
    }
    modules = {n for n in public if type(getattr(tether, n)).__name__ == "module"}
    assert public - modules - set(tether.__all__) == set()


def test_policies_and_auth_are_reachable_from_the_top_level() -> None:
    """The names DESIGN 2.2 promises at the top level exist."""
    for name in ("Client", "Retry", "Breaker", "Rate", "Bulkhead", "Timeouts", "ApiKey", "Bearer", "Basic"):
        assert name in tether.__all__


def test_errors_are_reexported_at_the_top_level() -> None:
    """Errors are importable from tether and tether.errors alike."""
    assert tether.NotFoundError is tether.errors.NotFoundError
    assert issubclass(tether.CircuitOpenError, tether.Rejected)
