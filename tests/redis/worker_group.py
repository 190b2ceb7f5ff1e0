"""Worker subprocesses started together for the multi-process Redis tests.

``workers(argv, configs)`` starts one ``python <argv...> <config JSON>`` per config; each prints
``ready``, waits for ``go START DURATION`` on stdin (``Workers.go`` releases them at one instant)
and prints one JSON line with what it saw (``Workers.results``). Every child is killed on the way
out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class Workers:
    """Worker subprocesses started together; ``go()`` releases them at one instant."""

    def __init__(self, procs: Sequence[subprocess.Popen[str]], errs: Sequence[Any]) -> None:
        self.procs = list(procs)
        self.errs = list(errs)

    def _stderr(self, i: int) -> str:
        self.errs[i].seek(0)
        text: str = self.errs[i].read()
        return text[-3000:]

    def wait_ready(self) -> None:
        for i, proc in enumerate(self.procs):
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                proc.wait(timeout=10)
                raise AssertionError(f"worker {i} did not start: {line!r}\n{self._stderr(i)}")

    def go(self, duration: float, lead: float = 0.5) -> float:
        start = time.time() + lead
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"go {start!r} {duration!r}\n")
            proc.stdin.flush()
        return start

    def results(self, timeout: float) -> list[dict[str, Any]]:
        out = []
        for i, proc in enumerate(self.procs):
            stdout, _ = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise AssertionError(f"worker {i} exited with {proc.returncode}:\n{self._stderr(i)}")
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out


@contextmanager
def workers(argv: Sequence[str], configs: Sequence[dict[str, Any]]) -> Iterator[Workers]:
    """Start ``python <argv...> <config JSON>`` per config; every one is killed on the way out."""
    procs: list[subprocess.Popen[str]] = []
    errs: list[Any] = []
    try:
        for cfg in configs:
            err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in finally)
            errs.append(err)
            procs.append(
                subprocess.Popen(
                    [sys.executable, *argv, json.dumps(cfg)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
            )
        group = Workers(procs, errs)
        group.wait_ready()
        yield group
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for err in errs:
            err.close()
