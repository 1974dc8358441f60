"""Short free-form answers (a name, a word, a date): for a user's own questions.

    exact  the answer, normalised (case, surrounding punctuation and spaces,
           a leading article), equals the gold answer normalised the same way
    regex  the gold answer is a regular expression the whole normalised
           answer must match (re.fullmatch, case-insensitive)

The answer is the content of the last \\boxed{} if the text has one, else
what follows the last "answer is" / "answer:", else the last non-empty line.
"""

from __future__ import annotations

import re

from collm.answers.boxed import last_boxed
from collm.answers.registry import register_task

_LEAD = re.compile(r"(?:final\s+)?answer\s*(?:is\s*:?|:)\s*", re.I)
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.I)


def normalise(s: str) -> str:
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s.strip())
    s = s.strip().strip("$*_`\"'").strip()
    s = s.rstrip(".!?;:,").strip()
    s = _ARTICLE.sub("", s)
    return re.sub(r"\s+", " ", s).lower()


def extract_free(text: str) -> str | None:
    if not text or not text.strip():
        return None
    b = last_boxed(text)
    if b is not None:
        out = normalise(b)
        return out or None
    hits = list(_LEAD.finditer(text))
    if hits:
        rest = text[hits[-1].end():].strip().splitlines()
        out = normalise(rest[0]) if rest else ""
        return out or None
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    out = normalise(lines[-1]) if lines else ""
    return out or None


def grade_exact(answer: str | None, gold) -> bool:
    return answer is not None and normalise(answer) == normalise(str(gold))


def gold_regex(gold) -> re.Pattern | None:
    try:
        return re.compile(str(gold), re.I)
    except re.error:
        return None


def grade_regex(answer: str | None, gold) -> bool:
    pat = gold_regex(gold)
    return answer is not None and pat is not None and pat.fullmatch(normalise(answer)) is not None


register_task("exact", extract_free, grade_exact, "a short answer: last \\boxed{}, 'answer is ...' or the last line; "
              "equal to the gold answer up to case, punctuation and articles")
register_task("regex", extract_free, grade_regex, "a short answer as for exact; the gold answer is a regular "
              "expression it must match whole")
