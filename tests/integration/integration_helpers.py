"""Shared bits of the spec-driven runtime tests (imported by name: the folder is on sys.path)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[2]
SPECS: Final = REPO / "specs"
CANARY: Final = "canary-9f3b2c71e4d8a6"


def spec_text(template: str, url: str) -> str:
    """``template`` with ``@URL@`` replaced by a server's URL (YAML braces stay as written)."""
    return template.replace("@URL@", url)


async def until(condition: Callable[[], bool], *, turns: int = 2000) -> None:
    """Yield to the loop until ``condition()`` holds (a bounded number of short sleeps)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")
