"""Problems are located (file:line:column), phrased as rules, and all reported together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from spec_helpers import MINIMAL

from tether.errors import SpecError
from tether.spec import Spec, SpecLoadError, load

THREE_MISTAKES = """\
service:
  name: example
  base_url: https://api.example.com/v1
retyr:
  max_attempts: 3
circuit_breaker:
  failure_threshold: -1
endpoints:
  get_item:
    path: /items/{id}
    method: FETCH
    parameters:
      - {name: id, in: path}
"""


def test_three_mistakes_are_reported_together_with_lines(write: Callable[..., Path]) -> None:
    """One load reports the unknown key, the bad number and the bad method, each at its line."""
    path = write(THREE_MISTAKES)
    with pytest.raises(SpecLoadError) as caught:
        load(path, environ={})
    problems = caught.value.problems
    assert [p.location.line for p in problems] == [4, 7, 11]
    assert "did you mean 'retry'" in problems[0].message
    assert "circuit_breaker.failure_threshold" in problems[1].message
    assert "endpoints.get_item.method" in problems[2].message
    message = str(caught.value)
    for line in (4, 7, 11):
        assert f"{path}:{line}:" in message


def test_spec_load_error_is_a_spec_error_with_a_location() -> None:
    """SpecLoadError is a tether SpecError; its location is the first problem's."""
    with pytest.raises(SpecError) as caught:
        load(THREE_MISTAKES, environ={})
    assert isinstance(caught.value, SpecLoadError)
    assert caught.value.location == "<string>:4:1"
    assert caught.value.error_code == "SPEC_001"


def test_unknown_key_hint_comes_from_the_right_section() -> None:
    """An unknown key inside retry is matched against retry's keys."""
    with pytest.raises(SpecLoadError) as caught:
        load(MINIMAL + "retry:\n  max_atempts: 3\n", environ={})
    (problem,) = caught.value.problems
    assert problem.message == "unknown key 'max_atempts' in retry; did you mean 'max_attempts'?"
    assert (problem.location.line, problem.location.column) == (10, 3)


def test_unknown_key_in_a_list_item_is_located() -> None:
    """An unknown key in a parameter names the parameter's path and line."""
    text = MINIMAL.replace("{name: id, in: path, type: string}", "{name: id, in: path, typ: string}")
    with pytest.raises(SpecLoadError) as caught:
        load(text, environ={})
    (problem,) = caught.value.problems
    assert "endpoints.get_item.parameters[0]" in problem.message
    assert "did you mean 'type'" in problem.message
    assert problem.location.line == 8


def test_closed_set_values_get_a_hint() -> None:
    """A misspelt backoff names the allowed values and the nearest one."""
    with pytest.raises(SpecLoadError) as caught:
        load(MINIMAL + "retry: {backoff: exponentail}\n", environ={})
    (problem,) = caught.value.problems
    assert "did you mean 'exponential'" in problem.message


def test_missing_required_key_points_at_its_parent() -> None:
    """A service without a name is reported at the service key."""
    with pytest.raises(SpecLoadError) as caught:
        load("id: X\nservice:\n  base_url: https://x.example\n", environ={})
    (problem,) = caught.value.problems
    assert problem.message == "service: missing required key 'name'"
    assert problem.location.line == 2


def test_yaml_syntax_error_is_located() -> None:
    """Broken YAML is one problem at the line the parser stopped."""
    with pytest.raises(SpecLoadError) as caught:
        load("service:\n  name: [unclosed\n  base_url: x\n", environ={})
    (problem,) = caught.value.problems
    assert problem.message.startswith("YAML syntax")
    assert problem.location.line >= 2


def test_python_tags_are_refused() -> None:
    """!!python/object tags are problems: the loader constructs plain data only."""
    with pytest.raises(SpecLoadError, match="unsupported YAML tag"):
        load("service: !!python/object:os.system {name: x}\n", environ={})


def test_duplicate_keys_are_problems() -> None:
    """A key written twice in one mapping is reported at the second one."""
    with pytest.raises(SpecLoadError) as caught:
        load(MINIMAL + "retry: {}\nretry: {}\n", environ={})
    (problem,) = caught.value.problems
    assert problem.message == "duplicate key 'retry'"
    assert problem.location.line == 10


def test_cross_field_rules_point_at_the_offending_key() -> None:
    """tier not in tiers is reported at the tier line, not the section."""
    text = MINIMAL + "rate_limits:\n  tiers:\n    free: {requests_per_minute: 5}\n  tier: gold\n"
    with pytest.raises(SpecLoadError) as caught:
        load(text, environ={})
    (problem,) = caught.value.problems
    assert "tier 'gold' is not one of the tiers (free)" in problem.message
    assert problem.location.line == 12


def test_path_placeholder_needs_a_parameter() -> None:
    """{id} in the path without a path parameter is a problem at the path."""
    text = "service: {name: x, base_url: 'https://x.example'}\nendpoints:\n  a:\n    path: /items/{id}\n"
    with pytest.raises(SpecLoadError) as caught:
        load(text, environ={})
    (problem,) = caught.value.problems
    assert "{id}" in problem.message
    assert problem.location.line == 4


def test_bad_regex_and_jmespath_are_spec_problems() -> None:
    """An invalid pattern and an invalid JMESPath are problems, not crashes."""
    text = MINIMAL.replace("type: string}", "type: string, pattern: '[unclosed'}") + (
        "  more:\n    path: /more\n    records: 'data[?'\n"
    )
    with pytest.raises(SpecLoadError) as caught:
        load(text, environ={})
    messages = " | ".join(p.message for p in caught.value.problems)
    assert "not a valid regular expression" in messages
    assert "not a valid JMESPath" in messages


def test_invalid_json_schema_is_a_problem() -> None:
    """A response schema that is not a JSON Schema is refused."""
    text = MINIMAL + "  bad:\n    path: /bad\n    response: {success: {schema: {type: 12}}}\n"
    with pytest.raises(SpecLoadError, match="not a valid JSON Schema"):
        load(text, environ={})


def test_empty_and_non_mapping_documents_are_problems() -> None:
    """An empty file and a list are both reported with a location."""
    for text in ("", "- a\n- b\n"):
        with pytest.raises(SpecLoadError) as caught:
            load(text, environ={})
        assert caught.value.location is not None


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    """A spec path that does not exist is a SpecLoadError naming it."""
    with pytest.raises(SpecLoadError, match="cannot read spec"):
        load(tmp_path / "nope.yaml")


def test_model_validate_still_raises_pydantic_errors_for_code() -> None:
    """Building a Spec in code is plain pydantic; only load() maps errors to locations."""
    spec = Spec.model_validate({"service": {"name": "x", "base_url": "https://x.example"}})
    assert spec.base_url == "https://x.example"
    assert spec.source == "<model>"
