"""Reading the project's JSON files (policies, bank sidecars) with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from collm.errors import CollmError


def read_json(path, what: str = "file"):
    """The parsed JSON at `path`; a missing file or bad JSON is a CollmError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CollmError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CollmError(f"{path}: not valid JSON ({e})") from None
