"""Numbers (GSM8K, SVAMP, MAWPS): gold after '####' or a plain number; the
model's last \\boxed{} if any, else its last number. Equal within 1e-6."""

from __future__ import annotations

import re

from collm.answers.boxed import last_boxed
from collm.answers.registry import register_task

_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|-?\.\d+")
_FRAC = re.compile(r"\\[dt]?frac\{(-?[\d.,]+)\}\{(-?[\d.,]+)\}")


def _clean(s: str) -> str:
    s = _FRAC.sub(r"\1/\2", s)
    s = re.sub(r"\\text\{[^}]*\}|\\mathrm\{[^}]*\}", " ", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.replace("\\!", "").replace("{,}", ",").replace("\\,", "")
    return s


def to_number(s: str) -> float | None:
    s = s.strip().replace(",", "").replace(" ", "")
    if not s:
        return None
    try:
        if "/" in s:
            a, b = s.split("/", 1)
            b_val = float(b)
            return float(a) / b_val if b_val != 0 else None
        return float(s)
    except ValueError:
        return None


def canonical(x: float) -> str:
    if abs(x - round(x)) < 1e-9:
        return str(int(round(x)))
    return f"{x:.6g}"


def _last_number(text: str) -> float | None:
    for m in reversed(_NUM.findall(text)):
        v = to_number(m)
        if v is not None:
            return v
    return None


def extract_number(text: str) -> str | None:
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        b = _clean(boxed)
        v = to_number(b)
        if v is None:
            v = _last_number(b)
        return canonical(v) if v is not None else None
    if "\\boxed" in text or "\\fbox" in text:
        return None  # a box was opened but never closed: unfinished, no answer
    if "####" in text:  # GSM8K gold format
        v = _last_number(_clean(text.split("####")[-1]))
        return canonical(v) if v is not None else None
    v = _last_number(_clean(text))
    return canonical(v) if v is not None else None


def gold_number(gold: str | float | int) -> str | None:
    if isinstance(gold, (int, float)):
        return canonical(float(gold))
    return extract_number(str(gold))


def grade_number(answer: str | None, gold: str | float | int) -> bool:
    if answer is None:
        return False
    a, g = to_number(answer), to_number(gold_number(gold) or "")
    if a is None or g is None:
        return False
    return abs(a - g) <= 1e-6 * max(1.0, abs(g))


register_task("gsm8k", extract_number, grade_number, "a number: last \\boxed{} or last number")
register_task("number", extract_number, grade_number, "a number: last \\boxed{} or last number")
