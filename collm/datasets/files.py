"""Your own questions: a JSONL or CSV file read as a dataset.

    problems = read_file("mine.jsonl", question_field="question", answer_field="answer", task="number")

Each row becomes a Problem whose id is its line number in the file (1-based;
for CSV, the line its record starts on), so a bank built from it and every
error name the same row. A row without the field, an empty question or a
gold answer the task cannot read is a CollmError naming its line;
skip_bad_rows=True skips such rows instead and counts them (`skipped`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from collm.answers import get_task
from collm.answers.freeform import gold_regex
from collm.answers.numeric import gold_number
from collm.datasets.base import Problem
from collm.errors import CollmError

FORMATS = (".jsonl", ".csv")


@dataclass
class FileRows:
    problems: list
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, why)


def _rows(path: Path):
    """(line number, row dict) of every record of a JSONL or CSV file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for ln, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError as e:
                    yield ln, f"not valid JSON ({e.msg})"
                    continue
                yield ln, row if isinstance(row, dict) else "not a JSON object"
    elif suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            start = 2
            for row in reader:
                yield start, row
                start = reader.line_num + 1
    else:
        raise CollmError(f"{path}: read as a dataset only as {' or '.join(FORMATS)} (convert a parquet file with "
                         "pandas: df.to_json(path, orient='records', lines=True))")


def gold_problem(task, gold) -> str | None:
    """Why the task cannot grade against this gold answer, or None when it can."""
    name = task.name.split("+")[0]
    text = str(gold).strip()
    if not text:
        return "the gold answer is empty"
    if name in ("gsm8k", "number"):
        return None if gold_number(gold) is not None else f"gold {text[:40]!r} is not a number"
    if name == "choice":
        return None if len(text) == 1 and text.upper() in "ABCDE" else f"gold {text[:40]!r} is not a letter A-E"
    if name == "regex":
        return None if gold_regex(gold) is not None else f"gold {text[:40]!r} is not a valid regular expression"
    return None


def read_file(path, *, question_field: str = "question", answer_field: str = "answer", task: str = "number",
              offset: int = 0, limit: int | None = None, skip_bad_rows: bool = False) -> FileRows:
    path = Path(path)
    if not path.is_file():
        raise CollmError(f"dataset file not found: {path}")
    t = get_task(task)
    out, skipped = [], []
    seen = 0
    try:
        for ln, row in _rows(path):
            why = row if isinstance(row, str) else None
            if why is None:
                missing = [f for f in (question_field, answer_field) if f not in row or row[f] is None]
                if missing:
                    why = f"no field {', '.join(repr(m) for m in missing)} (fields: {', '.join(map(str, row))[:200]})"
                elif not str(row[question_field]).strip():
                    why = "the question is empty"
                else:
                    why = gold_problem(t, row[answer_field])
            if why is not None:
                if not skip_bad_rows:
                    raise CollmError(f"{path}:{ln}: {why} (--skip-bad-rows skips such rows)")
                skipped.append((ln, why))
                continue
            seen += 1
            if seen <= offset:
                continue
            if limit is not None and len(out) >= limit:
                break
            meta = {k: v for k, v in row.items() if k not in (question_field, answer_field)}
            out.append(Problem(ln, str(row[question_field]), str(row[answer_field]).strip(), t.name, meta))
    except UnicodeDecodeError:
        raise CollmError(f"{path}: not UTF-8 text") from None
    except csv.Error as e:
        raise CollmError(f"{path}: not a readable CSV file ({e})") from None
    return FileRows(out, skipped)
