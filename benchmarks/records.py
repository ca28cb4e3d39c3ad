"""The benchmarks' records: one JSON object a line, printed and appended to a JSON-lines file."""

from __future__ import annotations

import json


def emit(record: dict, jsonl: str | None = None, echo: bool = True) -> None:
    """Print ``record`` (``echo``) and append it to ``jsonl`` (None: nowhere)."""
    line = json.dumps(record)
    if echo:
        print(line, flush=True)
    if jsonl:
        with open(jsonl, "a") as f:
            f.write(line + "\n")
