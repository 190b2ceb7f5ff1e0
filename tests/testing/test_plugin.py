"""The pytest plugin as a user meets it: a project of its own, run by pytest in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.cassette import Cassette
from tether.errors import CassetteError
from tether.testing import MockAPI

TEST_MODULE = """
import pytest

pytestmark = pytest.mark.tether_mock("dataapi")


async def test_one(tether_mock, tether_cassette):
    async with tether_mock.open(cassette=tether_cassette) as api:
        result = await api.call("get_data", identifier="ITEM-001")
    assert result.data["identifier"] == "ITEM-001"
    print("MODE", tether_cassette.record, "SENT", len(tether_mock.log))
"""


def test_cassettes_are_named_after_tests_recorded_with_the_option_and_replayed_by_default(
    pytester: pytest.Pytester,
) -> None:
    """--tether-record=once records cassettes/<module>/<test>.yaml; a plain run replays it with
    nothing sent."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_mod=TEST_MODULE)

    first = pytester.runpytest_inprocess("-s", "--assert=plain", "--tether-record=once", "-k", "test_one")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*MODE once SENT 1*"])
    assert (pytester.path / "cassettes" / "test_mod" / "test_one.yaml").is_file()

    second = pytester.runpytest_inprocess("-s", "--assert=plain", "-k", "test_one")
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["*MODE none SENT 0*"])


def test_the_markers_are_declared(pytester: pytest.Pytester) -> None:
    """--markers lists tether_mock, tether_cassette and tether_fast (so --strict-markers accepts them)."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_inprocess("--markers")
    result.stdout.fnmatch_lines(["*tether_mock(spec*", "*tether_cassette(path*", "*tether_fast:*"])


@pytest.mark.parametrize("ident", ["ITEM-002"])
@pytest.mark.tether_mock("dataapi")
@pytest.mark.tether_cassette(record="none")
async def test_a_cassette_never_recorded_fails_naming_its_file_and_how_to_record(
    tether_mock: MockAPI, tether_cassette: Cassette, ident: str
) -> None:
    """With record='none' and no file, the first call fails naming the test's cassette; nothing is sent."""
    assert (
        tether_cassette.path.name
        == f"test_a_cassette_never_recorded_fails_naming_its_file_and_how_to_record-{ident}.yaml"
    )
    assert tether_cassette.path.parent == Path(__file__).parent / "cassettes" / "test_plugin"
    async with tether_mock.open(cassette=tether_cassette) as api:
        with pytest.raises(CassetteError, match=r"does not exist and record='none'.*--tether-record=once"):
            await api.call("get_data", identifier=ident)
    assert tether_mock.log == []
