"""What a spec's ``testing:`` section says about where test files live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tether.spec._endpoint import Endpoint
from tether.spec._model import Spec

__all__ = ["cassette_path", "contract_folder", "error_schema", "fixtures_folder", "spec_folder"]


def spec_folder(spec: Spec) -> Path:
    """The folder relative paths in ``spec`` are read from: its file's, else the working one."""
    source = spec.source
    return Path.cwd() if source.startswith("<") else Path(source).resolve().parent


def _in_spec_folder(spec: Spec, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else spec_folder(spec) / path


def fixtures_folder(spec: Spec) -> Path | None:
    """``testing.unit_tests.fixtures_location`` (where cassettes live), relative to the spec's
    folder; ``None`` when the spec does not say."""
    testing = spec.testing
    unit = testing.unit_tests if testing is not None else None
    if unit is None or not unit.fixtures_location:
        return None
    return _in_spec_folder(spec, unit.fixtures_location)


def contract_folder(spec: Spec) -> Path | None:
    """The folder ``tether verify`` checks: ``testing.contract_tests.pact_location``, else the
    fixtures folder; ``None`` when the spec names neither."""
    testing = spec.testing
    contract = testing.contract_tests if testing is not None else None
    if contract is not None and contract.pact_location:
        return _in_spec_folder(spec, contract.pact_location)
    return fixtures_folder(spec)


def cassette_path(spec: Spec, name: str | os.PathLike[str]) -> Path:
    """Where ``tether.open(spec, cassette=name)`` keeps its cassette: ``name`` as given when it is
    absolute or the spec has no ``fixtures_location``, else inside that folder."""
    path = Path(name)
    folder = fixtures_folder(spec)
    if path.is_absolute() or folder is None:
        return path
    return folder / path


def error_schema(endpoint: Endpoint, status: int) -> dict[str, Any] | None:
    """The schema ``response.errors`` documents for an error ``status`` (``'404'``, then
    ``'4xx'``, then ``default``), else ``None``."""
    if endpoint.response is None:
        return None
    errors = endpoint.response.errors
    for key in (str(status), f"{str(status)[0]}xx", f"{str(status)[0]}XX", "default"):
        entry = errors.get(key)
        if entry is not None and entry.schema_ is not None:
            return entry.schema_
    return None
