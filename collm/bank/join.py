"""Join banks drawn on the same problems with different seeds into one bank
with more samples per problem: two K = 16 builds (seeds 0 and 1) make a
K = 32 bank. A bank can so grow a few samples at a time, on any machine.

Only draws from the same distribution may be joined: the banks must agree on
the model's weights, dataset, split, prompt, extractor, texts and every
sampling setting but the seed, and their seeds must differ (the same seed
would repeat the same draws). The joined bank keeps the first bank's greedy
decode and prefix signal, and the rows that every bank holds.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from collm.bank.format import Bank, encode_line, header_field, problem_to_dict
from collm.errors import CollmError

# header fields that must be equal for banks to be joined
SAME = (("model", "sha256"), ("model", "params"), ("dataset",), ("split",), ("prompt", "system"),
        ("sampling", "temperature"), ("sampling", "top_p"), ("sampling", "top_k"), ("sampling", "max_tokens"),
        ("extractor",), ("texts",))


def _seeds(b: Bank) -> list:
    s = header_field(b.header, ("sampling", "seed"))
    return list(s) if isinstance(s, list) else [s]


def join_banks(banks: list[Bank]) -> tuple[Bank, list[int]]:
    """(the joined bank, the rows left out because some bank lacks them)."""
    if len(banks) < 2:
        raise CollmError("joining needs at least two banks")
    for b in banks:
        if not header_field(b.header, ("sampling",)):
            raise CollmError(f"{b.path}: no sampling settings in its header; only banks that record them can be joined")
    first = banks[0]
    for b in banks[1:]:
        for path in SAME:
            x, y = header_field(first.header, path), header_field(b.header, path)
            if x != y:
                raise CollmError(f"{first.path} and {b.path} differ in {'.'.join(path)} ({x!r} vs {y!r}); "
                                 "only draws from the same distribution can be joined")
    seen: dict = {}
    for b in banks:
        for s in _seeds(b):
            if s is None:
                raise CollmError(f"{b.path}: its header records no seed")
            if s in seen:
                raise CollmError(f"{seen[s]} and {b.path} were both drawn with seed {s}: their samples would repeat")
            seen[s] = b.path
    rows = [{p.i: p for p in b.problems} for b in banks]
    common = [p.i for p in first.problems if all(p.i in r for r in rows[1:])]
    if not common:
        raise CollmError("the banks share no problem rows")
    left_out = sorted(set().union(*(set(r) for r in rows)) - set(common))
    problems = []
    for i in common:
        p = rows[0][i]
        for r in rows[1:]:
            if str(r[i].gold) != str(p.gold):
                raise CollmError(f"row {i} has gold {p.gold!r} in one bank and {r[i].gold!r} in another")
        problems.append(replace(p, samples=[s for r in rows for s in r[i].samples]))
    k = min(len(p.samples) for p in problems)
    header = json.loads(json.dumps(first.header))
    header["sampling"]["k"] = k
    header["sampling"]["seed"] = [s for b in banks for s in _seeds(b)]
    header["joined_from"] = [Path(b.path).name for b in banks]
    return Bank(" + ".join(b.path for b in banks), problems, header), left_out


def write_bank(bank: Bank, out: str | Path) -> None:
    """Write a bank file (header line, then one line per problem); refuses to
    overwrite."""
    out = Path(out)
    if out.exists():
        raise CollmError(f"{out} exists; joining writes a new bank, choose another --out")
    tmp = out.with_name(out.name + ".part")
    try:
        with open(tmp, "wb") as f:
            f.write(encode_line(bank.header))
            for p in bank.problems:
                f.write(encode_line(problem_to_dict(p)))
        os.replace(tmp, out)
    except OSError as e:
        raise CollmError(f"cannot write {out}: {e.strerror or e}") from None
