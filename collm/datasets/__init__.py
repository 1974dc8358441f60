"""Benchmarks vendored under collm/datasets/data (licences beside them),
registered by name with the task that grades them; and your own questions
from a JSONL or CSV file (collm.datasets.files).

    problems = load_dataset("gsm8k", split="test", offset=0, limit=10)
    problems = load_dataset("mine.jsonl", question_field="q", answer_field="a", task="exact")
    problems[0].question, problems[0].gold, problems[0].task, problems[0].meta

A new benchmark is one register_dataset() call: its name, task, split files
and a function turning a JSON row into (question, gold, meta).
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from collm.datasets.base import Problem
from collm.datasets.files import FORMATS, read_file
from collm.errors import CollmError

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Dataset:
    name: str
    task: str
    splits: dict[str, str]  # split -> file name
    row: Callable[[dict], tuple[str, str, dict]]  # json row -> (question, gold, meta)
    licence: str


DATASETS: dict[str, Dataset] = {}


def register_dataset(name, task, splits, row, licence):
    DATASETS[name] = Dataset(name, task, splits, row, licence)


def _gsm8k(r):
    gold = r["answer"].split("####")[-1].strip().replace(",", "")
    return r["question"], gold, {}


def _math500(r):
    return r["problem"], r["answer"], {"subject": r["subject"], "level": r["level"]}


def _svamp(r):
    return f"{r['Body'].strip()} {r['Question'].strip()}", _num(r["Answer"]), {"type": r["Type"]}


def _mawps(r):
    return r["input"], _num(r["target"]), {"type": r["type"]}


def _num(x):
    x = float(x)
    return str(int(x)) if x == int(x) else str(x)


def _aqua(r):
    opts = "\n".join(o.replace(")", ") ", 1) for o in r["options"])
    q = f"{r['question']}\nAnswer Choices:\n{opts}\nAnswer with the letter of the correct choice."
    return q, r["correct"], {}


def _arc(r):
    choices = r["question"]["choices"]
    letters = string.ascii_uppercase
    # ARC labels are A-E or 1-4: ask for letters, map numeric gold to its letter
    labels = [c["label"] for c in choices]
    opts = "\n".join(f"{letters[k]}) {c['text']}" for k, c in enumerate(choices))
    gold = letters[labels.index(r["answerKey"])]
    q = f"{r['question']['stem']}\nAnswer Choices:\n{opts}\nAnswer with the letter of the correct choice."
    return q, gold, {}


register_dataset("gsm8k", "gsm8k", {"test": "gsm8k_test.jsonl", "train": "gsm8k_train.jsonl"}, _gsm8k, "MIT (LICENSE.grade-school-math)")
register_dataset("math500", "math", {"test": "math500_test.jsonl"}, _math500, "MIT (LICENSE.prm800k)")
register_dataset("svamp", "number", {"test": "svamp_test.jsonl"}, _svamp, "MIT (LICENSE.math-evaluation-harness)")
register_dataset("mawps", "number", {"test": "mawps_test.jsonl"}, _mawps, "MIT (LICENSE.math-evaluation-harness)")
register_dataset("aqua", "choice", {"test": "aqua_test.jsonl"}, _aqua, "Apache-2.0 / MIT (LICENSE.qwen25math-evaluation)")
register_dataset("arc_easy", "choice", {"test": "arc_easy_test_genmc.jsonl"}, _arc, "CC BY-SA 4.0 / Apache-2.0 (LICENSE.GenMC-apache2)")
register_dataset("arc_challenge", "choice", {"test": "arc_challenge_test_genmc.jsonl"}, _arc, "CC BY-SA 4.0 / Apache-2.0 (LICENSE.GenMC-apache2)")


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise CollmError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}, or a .jsonl/.csv file")
    return DATASETS[name]


def is_file_dataset(name: str) -> bool:
    """Whether `name` names a file rather than a registered dataset."""
    return name not in DATASETS and (Path(name).suffix.lower() in FORMATS + (".parquet", ".json") or Path(name).is_file())


def load_dataset(name: str, split: str = "test", offset: int = 0, limit: int | None = None, *,
                 question_field: str | None = None, answer_field: str | None = None, task: str | None = None,
                 skip_bad_rows: bool = False, skipped: list | None = None) -> list[Problem]:
    """A registered dataset's split, or the rows of a JSONL/CSV file (fields and
    task as given; `skipped` collects (line, why) of rows skip_bad_rows left out)."""
    if is_file_dataset(name):
        if offset < 0 or (limit is not None and limit < 0):
            raise CollmError("offset and limit must be >= 0")
        rows = read_file(name, question_field=question_field or "question", answer_field=answer_field or "answer",
                         task=task or "number", offset=offset, limit=limit, skip_bad_rows=skip_bad_rows)
        if skipped is not None:
            skipped.extend(rows.skipped)
        return rows.problems
    given = [f for f, v in (("question_field", question_field), ("answer_field", answer_field)) if v]
    if given:
        raise CollmError(f"{', '.join(given)} applies to a dataset file, not to the registered dataset {name!r}")
    ds = get_dataset(name)
    if split not in ds.splits:
        raise CollmError(f"dataset {name!r} has no split {split!r}; it has: {', '.join(ds.splits)}")
    if offset < 0 or (limit is not None and limit < 0):
        raise CollmError("offset and limit must be >= 0")
    out = []
    with open(DATA / ds.splits[split]) as f:
        for i, line in enumerate(f):
            if i < offset:
                continue
            if limit is not None and len(out) >= limit:
                break
            q, gold, meta = ds.row(json.loads(line))
            out.append(Problem(i, q, gold, task or ds.task, meta))
    return out
