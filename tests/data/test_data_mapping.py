"""Inbound and outbound field mapping, null values, defaults, required fields, records selection."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from tether._redact import MASK
from tether.errors import ValidationError
from tether.mapping import Mapper, mapper_for, search, select_records
from tether.spec._endpoint import DataMappings, MappingRule


def rules(*items: dict[str, Any]) -> tuple[MappingRule, ...]:
    return tuple(MappingRule.model_validate(item) for item in items)


FRED = rules(
    {"external_field": "date", "internal_field": "day", "transform": "date"},
    {"external_field": "value", "internal_field": "value", "transform": "decimal", "null_values": ["."]},
)


def test_inbound_maps_fields_with_transforms() -> None:
    """Each external field is read, transformed and written under its internal name."""
    mapper = Mapper(FRED)
    out = mapper.map_record({"date": "2024-01-01", "value": "27956.998", "realtime_start": "x"})
    assert out == {"day": date(2024, 1, 1), "value": Decimal("27956.998")}


def test_null_values_become_none() -> None:
    """A value listed in null_values (FRED's '.') maps to None, not a transform error."""
    out = Mapper(FRED).map_record({"date": "2024-01-01", "value": "."})
    assert out["value"] is None


def test_null_values_compare_by_type() -> None:
    """A numeric null (-999) matches -999 and -999.0 but not the string '-999' or False for 0."""
    mapper = Mapper(rules({"external_field": "v", "internal_field": "v", "null_values": [-999, 0]}))
    assert mapper.map_record({"v": -999.0}) == {"v": None}
    assert mapper.map_record({"v": "-999"}) == {"v": "-999"}
    assert mapper.map_record({"v": False}) == {"v": False}


def test_default_fills_missing_and_null_values() -> None:
    """A rule's default is used when the field is missing, null or a null value."""
    mapper = Mapper(
        rules({"external_field": "c", "internal_field": "currency", "default": "USD", "null_values": [""]})
    )
    assert mapper.map_record({}) == {"currency": "USD"}
    assert mapper.map_record({"c": None}) == {"currency": "USD"}
    assert mapper.map_record({"c": ""}) == {"currency": "USD"}
    assert mapper.map_record({"c": "EUR"}) == {"currency": "EUR"}


def test_required_missing_field_names_record_and_field() -> None:
    """A required field that is missing is a ValidationError naming the record index and field."""
    mapper = Mapper(rules({"external_field": "id", "internal_field": "id", "required": True}))
    with pytest.raises(ValidationError, match=r"record 2: required field 'id' is missing") as info:
        mapper.map_records([{"id": 1}, {"id": 2}, {"name": "x"}])
    assert info.value.details == [{"record": 2, "field": "id", "rule": "required"}]


def test_required_field_that_is_a_null_value_fails() -> None:
    """A required field holding one of its null values fails too."""
    mapper = Mapper(
        rules({"external_field": "v", "internal_field": "v", "required": True, "null_values": ["."]})
    )
    with pytest.raises(ValidationError, match="is null"):
        mapper.map_record({"v": "."})


def test_required_with_default_uses_the_default() -> None:
    """A written default satisfies a required rule."""
    mapper = Mapper(rules({"external_field": "v", "internal_field": "v", "required": True, "default": 0}))
    assert mapper.map_record({}) == {"v": 0}


def test_transform_error_names_record_field_transform_and_sample() -> None:
    """A value a transform cannot parse is reported with record index, field, transform and value."""
    with pytest.raises(ValidationError) as info:
        Mapper(FRED).map_records(
            [{"date": "2024-01-01", "value": "1"}, {"date": "2024-01-01", "value": "n/a"}]
        )
    message = str(info.value)
    assert "record 1" in message and "'value'" in message and "decimal" in message and "'n/a'" in message
    assert info.value.details is not None and info.value.details[0]["transform"] == "decimal"


def test_transform_error_masks_credential_fields() -> None:
    """The sample of a credential-named field is masked in the error."""
    mapper = Mapper(rules({"external_field": "api_key", "internal_field": "k", "transform": "int"}))
    with pytest.raises(ValidationError) as info:
        mapper.map_record({"api_key": "topsecretvalue"})
    assert "topsecretvalue" not in str(info.value) and MASK in str(info.value)


def test_transform_lists_apply_in_order() -> None:
    """A list of transforms runs left to right (strip, then upper)."""
    mapper = Mapper(rules({"external_field": "s", "internal_field": "s", "transform": ["strip", "upper"]}))
    assert mapper.map_record({"s": "  gdp "}) == {"s": "GDP"}


def test_dotted_external_fields_read_nested_values_and_list_items() -> None:
    """A dotted external path reads nested objects; numeric segments index lists."""
    mapper = Mapper(
        rules(
            {"external_field": "quote.price", "internal_field": "price", "transform": "float"},
            {"external_field": "tags.1", "internal_field": "second"},
            {"external_field": "quote.missing.deep", "internal_field": "gone"},
        )
    )
    out = mapper.map_record({"quote": {"price": "9.5"}, "tags": ["a", "b"]})
    assert out == {"price": 9.5, "second": "b", "gone": None}


def test_jmespath_external_fields_select_values() -> None:
    """An external field that is a JMESPath expression is evaluated over the record."""
    mapper = Mapper(
        rules(
            {"external_field": "bars[-1].c", "internal_field": "last_close", "transform": "float"},
            {"external_field": "length(bars)", "internal_field": "count"},
        )
    )
    assert mapper.map_record({"bars": [{"c": "1"}, {"c": "2.5"}]}) == {"last_close": 2.5, "count": 2}


def test_dotted_internal_fields_build_nested_output() -> None:
    """A dotted internal field writes a nested object."""
    mapper = Mapper(
        rules(
            {"external_field": "t", "internal_field": "when.at", "transform": "epoch_ms"},
            {"external_field": "z", "internal_field": "when.zone"},
        )
    )
    out = mapper.map_record({"t": 0, "z": "UTC"})
    assert out == {"when": {"at": datetime(1970, 1, 1, tzinfo=UTC), "zone": "UTC"}}


def test_keep_unmapped_copies_other_fields() -> None:
    """With keep_unmapped, fields no rule reads pass through; consumed top-level fields do not."""
    mapper = Mapper(
        rules({"external_field": "ts", "internal_field": "timestamp", "transform": "epoch_s"}),
        keep_unmapped=True,
    )
    out = mapper.map_record({"ts": 0, "symbol": "AAPL"})
    assert out == {"symbol": "AAPL", "timestamp": datetime(1970, 1, 1, tzinfo=UTC)}


def test_no_rules_copies_records() -> None:
    """A mapper without rules maps each record to a copy of itself."""
    record = {"a": 1}
    out = Mapper(()).map_record(record)
    assert out == record and out is not record


def test_non_object_record_is_a_validation_error() -> None:
    """A record that is not an object cannot be mapped."""
    with pytest.raises(ValidationError, match="record 0: expected an object"):
        Mapper(FRED).map_records([[1, 2]])


def test_outbound_maps_internal_to_external_with_json_ready_values() -> None:
    """Outbound reads internal fields, writes external dotted fields, and produces JSON-ready values."""
    mappings = DataMappings.model_validate(
        {
            "outbound": [
                {"external_field": "observation_start", "internal_field": "start", "transform": "date"},
                {"external_field": "window.from_ms", "internal_field": "since", "transform": "epoch_ms"},
                {"external_field": "amount", "internal_field": "amount", "transform": "decimal"},
                {"external_field": "note", "internal_field": "note"},
            ]
        }
    )
    mapper = Mapper(mappings.outbound, direction="outbound")
    out = mapper.map_record(
        {
            "start": date(2024, 1, 2),
            "since": datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
            "amount": Decimal("1.10"),
        }
    )
    assert out == {"observation_start": "2024-01-02", "window": {"from_ms": 1000}, "amount": "1.10"}


def test_outbound_jmespath_reads_internal_values() -> None:
    """Outbound rules may read our data with a JMESPath expression."""
    mappings = DataMappings.model_validate(
        {"outbound": [{"external_field": "ids", "internal_field": "items[].id"}]}
    )
    out = Mapper(mappings.outbound, direction="outbound").map_record({"items": [{"id": 1}, {"id": 2}]})
    assert out == {"ids": [1, 2]}


def test_mapper_for_compiles_once_per_rule_tuple() -> None:
    """The same rule tuple gets the same compiled mapper back."""
    assert mapper_for(FRED) is mapper_for(FRED)
    assert mapper_for(FRED, direction="outbound") is not mapper_for(FRED)


@pytest.mark.parametrize(
    ("body", "expression", "expected"),
    [
        ({"observations": [{"v": 1}, {"v": 2}]}, "observations", [{"v": 1}, {"v": 2}]),
        ({"data": {"items": [1]}}, "data.items", [1]),
        ({"data": {}}, "data.items", []),
        ({"results": [{"x": 1, "ok": True}, {"x": 2, "ok": False}]}, "results[?ok]", [{"x": 1, "ok": True}]),
        ([{"a": 1}], None, [{"a": 1}]),
        ({"a": 1}, None, [{"a": 1}]),
        (None, None, []),
    ],
)
def test_select_records(body: Any, expression: str | None, expected: list[Any]) -> None:
    """records: selects the list of records with JMESPath (a bare body is its own records)."""
    assert select_records(body, expression) == expected


def test_select_records_rejects_a_non_list_selection() -> None:
    """An expression that selects an object or a scalar is reported, not iterated."""
    with pytest.raises(ValidationError, match="selected an object, not a list"):
        select_records({"data": {"a": 1}}, "data")


def test_search_reports_jmespath_runtime_errors_as_validation_errors() -> None:
    """A JMESPath function applied to the wrong type is a ValidationError, not a crash."""
    with pytest.raises(ValidationError, match="JMESPath"):
        search("length(@)", 5)
