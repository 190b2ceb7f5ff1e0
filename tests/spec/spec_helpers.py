"""Constants shared by the spec tests (imported by name: the test directory is on sys.path)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"

MINIMAL = """\
service:
  name: example
  base_url: https://api.example.com/v1
endpoints:
  get_item:
    path: /items/{id}
    parameters:
      - {name: id, in: path, type: string}
"""
