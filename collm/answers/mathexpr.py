"""MATH-style answers: the last \\boxed{}, compared with math-verify."""

from __future__ import annotations

import re

from collm.answers.boxed import last_boxed
from collm.answers.registry import register_task


def _normalise(s: str) -> str:
    s = s.strip().strip("$").strip()
    s = re.sub(r"\\left|\\right|\\!|\\,|\\;|\\ ", "", s)
    s = s.replace("dfrac", "frac").replace("tfrac", "frac")
    s = re.sub(r"\\text\{\s*\}", "", s)
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".")


def extract_math(text: str) -> str | None:
    if not text:
        return None
    b = last_boxed(text)
    if b is None:
        return None
    b = _normalise(b)
    return b or None


def grade_math(answer: str | None, gold: str) -> bool:
    if answer is None:
        return False
    from math_verify import parse, verify

    g = str(gold)
    if _normalise(answer) == _normalise(g):
        return True
    try:
        gp = parse("$" + g + "$")
        ap = parse("$" + answer + "$")
        return bool(gp) and bool(ap) and bool(verify(gp, ap))
    except Exception:  # math-verify raises on some malformed LaTeX: not equal
        return False


register_task("math", extract_math, grade_math, "LaTeX in the last \\boxed{}, graded by math-verify")
