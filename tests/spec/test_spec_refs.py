"""$ref: local pointers, sibling files, cycles, and missing targets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tether.spec import SpecLoadError, load

HEAD = "service: {name: x, base_url: 'https://x.example'}\n"


def test_local_ref_is_inlined() -> None:
    """$ref: '#/components/schemas/Item' is replaced by the schema."""
    text = HEAD + (
        "components:\n  schemas:\n    Item: {type: object, required: [id]}\n"
        "endpoints:\n  a:\n    path: /a\n"
        "    response: {success: {schema: {$ref: '#/components/schemas/Item'}}}\n"
    )
    response = load(text, environ={}).endpoints["a"].response
    assert response is not None
    assert response.success.schema_ == {"type": "object", "required": ["id"]}


def test_nested_refs_resolve_through_each_other() -> None:
    """A schema that refers to another schema is inlined all the way down."""
    text = HEAD + (
        "components:\n  schemas:\n    Id: {type: string}\n"
        "    Item: {type: object, properties: {id: {$ref: '#/components/schemas/Id'}}}\n"
        "endpoints:\n  a: {path: /a, response: {success: {schema: {$ref: '#/components/schemas/Item'}}}}\n"
    )
    response = load(text, environ={}).endpoints["a"].response
    assert response is not None and response.success.schema_ is not None
    assert response.success.schema_["properties"]["id"] == {"type": "string"}


def test_keys_beside_ref_override_the_target() -> None:
    """Sibling keys of $ref are laid over the referenced mapping."""
    text = HEAD + (
        "components:\n  schemas:\n    Item: {type: object, description: base}\n"
        "endpoints:\n  a:\n    path: /a\n"
        "    body: {schema: {$ref: '#/components/schemas/Item', description: mine}}\n"
    )
    body = load(text, environ={}).endpoints["a"].body
    assert body is not None and body.schema_ == {"type": "object", "description": "mine"}


def test_sibling_file_ref(write: Callable[..., Path]) -> None:
    """other.yaml#/components/schemas/X reads a file beside the spec."""
    write("components:\n  schemas:\n    Shared: {type: array, items: {type: integer}}\n", "common.yaml")
    spec_path = write(
        HEAD
        + "endpoints:\n  a: {path: /a, body: {schema: {$ref: 'common.yaml#/components/schemas/Shared'}}}\n"
    )
    body = load(spec_path, environ={}).endpoints["a"].body
    assert body is not None and body.schema_ == {"type": "array", "items": {"type": "integer"}}


def test_error_in_a_sibling_file_points_into_that_file(write: Callable[..., Path]) -> None:
    """A bad parameter pulled from common.yaml is reported at common.yaml's line."""
    write("parameters:\n  Id:\n    name: id\n    in: nowhere\n", "common.yaml")
    spec_path = write(
        HEAD + "endpoints:\n  a:\n    path: /a\n    parameters:\n      - $ref: 'common.yaml#/parameters/Id'\n"
    )
    with pytest.raises(SpecLoadError) as caught:
        load(spec_path, environ={})
    (problem,) = caught.value.problems
    assert problem.location.file.endswith("common.yaml")
    assert problem.location.line == 4


def test_ref_cycle_is_detected_and_named() -> None:
    """A -> B -> A is a problem naming the chain, not a hang."""
    text = HEAD + (
        "components:\n  schemas:\n"
        "    A: {$ref: '#/components/schemas/B'}\n"
        "    B: {$ref: '#/components/schemas/A'}\n"
    )
    with pytest.raises(SpecLoadError) as caught:
        load(text, environ={})
    assert any("$ref cycle" in p.message and "A -> B -> A" in p.message for p in caught.value.problems)


def test_self_referencing_schema_is_a_cycle() -> None:
    """A schema that contains a ref to itself is reported as a cycle."""
    text = HEAD + (
        "components:\n  schemas:\n"
        "    Node: {type: object, properties: {next: {$ref: '#/components/schemas/Node'}}}\n"
    )
    with pytest.raises(SpecLoadError, match=r"\$ref cycle: Node -> Node"):
        load(text, environ={})


def test_cycle_across_files_is_detected(write: Callable[..., Path]) -> None:
    """a.yaml -> b.yaml -> a.yaml is detected too."""
    write("X: {$ref: 'b.yaml#/Y'}\n", "a.yaml")
    write("Y: {$ref: 'a.yaml#/X'}\n", "b.yaml")
    spec_path = write(HEAD + "components: {schemas: {S: {$ref: 'a.yaml#/X'}}}\n")
    with pytest.raises(SpecLoadError, match=r"\$ref cycle"):
        load(spec_path, environ={})


def test_missing_target_and_missing_file_are_reported_at_the_ref(write: Callable[..., Path]) -> None:
    """Both a missing pointer and a missing file are problems at the $ref's line."""
    spec_path = write(
        HEAD + "components:\n  schemas:\n    A: {$ref: '#/components/schemas/Nope'}\n"
        "    B: {$ref: 'gone.yaml#/X'}\n"
    )
    with pytest.raises(SpecLoadError) as caught:
        load(spec_path, environ={})
    lines = {p.location.line: p.message for p in caught.value.problems}
    assert "no '/components/schemas/Nope'" in lines[4]
    assert "cannot read 'gone.yaml'" in lines[5]
