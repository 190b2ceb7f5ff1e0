"""The base of every spec model, and small shared value types."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue, WithJsonSchema
from pydantic_core import core_schema

from tether.spec._types import Kind

__all__ = ["AlsoAccepts", "HeaderName", "Name", "SpecModel", "Text", "Url", "any_case", "lower_text"]


class SpecModel(BaseModel):
    """Frozen, strict about unknown keys; field docs come from attribute docstrings."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_alias=True,
        validate_by_name=True,
        use_attribute_docstrings=True,
    )

    def given(self, name: str) -> bool:
        """Whether the spec wrote ``name`` (as opposed to the default filling it in)."""
        return name in self.model_fields_set


def _to_text(value: Any) -> Any:
    """YAML reads ``version: 1.0`` as a float and ``version: 2`` as an int: keep them as text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def lower_text(value: Any) -> Any:
    """Closed sets are matched case-insensitively (``GraphQL``, ``graphql``, ``API Key``)."""
    if isinstance(value, str):
        return value.strip().lower().replace(" ", "_").replace("-", "_")
    return value


Text = Annotated[str, BeforeValidator(_to_text), WithJsonSchema({"type": ["string", "number"]})]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use letters, digits, '_', '.', '-' (start with a letter)"
        )
    return value


Name = Annotated[str, AfterValidator(_name), Kind("name", "letters, digits, _ . - (starting with a letter)")]

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _header_name(value: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{value!r} is not a valid HTTP header name")
    return value


HeaderName = Annotated[str, AfterValidator(_header_name), Kind("header", "an HTTP header name")]


def _url(value: str) -> str:
    if "${" in value:  # an unselected environment's URL, left unresolved on purpose
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} must be an absolute http:// or https:// URL")
    return value


Url = Annotated[str, AfterValidator(_url), Kind("URL", "an absolute http:// or https:// URL")]


@dataclass(frozen=True, slots=True, eq=False)
class AlsoAccepts:
    """JSON Schema note: besides the field's own schema, a shorthand the loader normalises."""

    shorthand: dict[str, Any]

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [self.shorthand, handler(schema)]}


def _letters(value: str) -> str:
    out = []
    for char in value:
        if char.isalpha():
            out.append(f"[{char.lower()}{char.upper()}]")
        elif char in "_ -":
            out.append("[_ -]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def any_case(*values: str) -> WithJsonSchema:
    """JSON Schema of a closed set matched case-insensitively (``REST``, ``rest``, ``API Key``)."""
    pattern = "^(" + "|".join(_letters(v) for v in values) + ")$"
    return WithJsonSchema({"type": "string", "pattern": pattern, "examples": list(values)})
