"""The spec's JSON Schema, generated from the models (for editor completion and validation).

It validates specs as they are written, before loading: both endpoint forms, ``error_handling``
and top-level ``inbound``/``outbound``. Defaults of durations and sizes are written the way a
user writes them (``"5s"``, ``"512MB"``), never as a bare number whose unit would be ambiguous.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from tether.spec._endpoint import Endpoint
from tether.spec._introspect import display_default, field_kind, models_of
from tether.spec._model import Spec
from tether.spec._normalize import ENDPOINT_BLOCKS

__all__ = ["SCHEMA_DIALECT", "json_schema"]

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def _all_models(root: type[BaseModel]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [root]
    index = 0
    while index < len(found):
        for info in found[index].model_fields.values():
            for model in models_of(info.annotation):
                if model not in found:
                    found.append(model)
        index += 1
    return found


def _readable_defaults(schema: dict[str, Any]) -> None:
    defs = schema.get("$defs", {})
    for model in _all_models(Spec):
        target = schema if model is Spec else defs.get(model.__name__)
        if target is None:
            continue
        properties = target.get("properties", {})
        for name, info in model.model_fields.items():
            kind = field_kind(info)
            prop = properties.get(info.alias or name)
            if prop is None or kind is None or "default" not in prop:
                continue
            value = display_default(info, kind)
            if value is not PydanticUndefined:
                prop["default"] = value


def _endpoint_forms(schema: dict[str, Any]) -> None:
    endpoint = schema["$defs"][Endpoint.__name__]
    properties = endpoint["properties"]
    for block, keys in ENDPOINT_BLOCKS.items():
        properties[block] = {
            "type": "object",
            "description": f"The INT template's nested form: {', '.join(keys)} (hoisted to the endpoint).",
            "properties": {key: copy.deepcopy(properties[key]) for key in keys},
            "additionalProperties": False,
        }
    required = [key for key in endpoint.get("required", []) if key != "path"]
    if required:
        endpoint["required"] = required
    else:
        endpoint.pop("required", None)
    endpoint["anyOf"] = [
        {"required": ["path"]},
        {"required": ["endpoint"], "properties": {"endpoint": {"required": ["path"]}}},
    ]


def _hoisted_sections(schema: dict[str, Any]) -> None:
    properties = schema["properties"]
    properties["error_handling"] = {
        "type": "object",
        "description": "The template's Error Handling section: error_mapping and fallback_behavior.",
        "properties": {
            "error_mapping": copy.deepcopy(properties["error_mapping"]),
            "fallback_behavior": copy.deepcopy(properties["fallback_behavior"]),
        },
        "additionalProperties": False,
    }
    mappings = schema["$defs"]["DataMappings"]["properties"]
    for direction in ("inbound", "outbound"):
        prop = copy.deepcopy(mappings[direction])
        prop["description"] = f"The template's {direction} mappings (same as data_mappings.{direction})."
        properties[direction] = prop


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an integration spec as written in YAML."""
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    _readable_defaults(schema)
    _endpoint_forms(schema)
    _hoisted_sections(schema)
    schema["title"] = "tether integration spec"
    return {"$schema": SCHEMA_DIALECT, **schema}
