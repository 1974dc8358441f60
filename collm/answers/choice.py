"""Multiple-choice letters (AQuA A-E, ARC A-E or 1-4)."""

from __future__ import annotations

import re

from collm.answers.boxed import last_boxed
from collm.answers.registry import register_task

_PATTERNS = [
    re.compile(r"answer\s*(?:is|:)?\s*[:\s]*\(?\s*([A-E])\s*\)?(?![A-Za-z])", re.I),
    re.compile(r"\(([A-E])\)"),
    re.compile(r"(?<![A-Za-z])([A-E])(?:\)|\.)?\s*$"),
]


def extract_choice(text: str) -> str | None:
    if not text:
        return None
    b = last_boxed(text)
    if b is not None:
        m = re.fullmatch(r"\s*(?:\\text\{)?\(?([A-Ea-e])\)?\}?\s*(?:[:.)].*)?", b)
        return m.group(1).upper() if m else None
    for pat in _PATTERNS:
        hits = pat.findall(text)
        if hits:
            return hits[-1].upper()
    return None


def grade_choice(answer: str | None, gold: str) -> bool:
    return answer is not None and answer.strip().upper() == str(gold).strip().upper()


register_task("choice", extract_choice, grade_choice, "a letter A-E")
