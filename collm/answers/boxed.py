"""Find the content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""

from __future__ import annotations


def last_boxed(text: str) -> str | None:
    best = -1
    for cmd in ("\\boxed", "\\fbox"):
        best = max(best, text.rfind(cmd))
    if best < 0:
        return None
    i = best
    while i < len(text) and text[i] != "{":
        if text[i] == " " and text[best:i].strip() in ("\\boxed", "\\fbox"):
            # "\boxed 5" form: take the next token
            rest = text[i + 1 :].split()
            return rest[0].rstrip(".$") if rest else None
        i += 1
    if i >= len(text):
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None  # unbalanced: an unfinished box is no answer
