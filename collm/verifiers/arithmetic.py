"""Arithmetic check: recompute every equation a solution writes out.

Small models set a problem up correctly and then write `500 - 2500 = 250`.
Such a slip is visible in the text, and finding it costs no model FLOPs: this
verifier reads each `expression = number` (or `number = expression`) the
solution states, in plain text or LaTeX (\\times, \\cdot, \\div, \\frac{a}{b},
thousands separators, $ and %), evaluates the expression with a whitelist
of arithmetic operators (never eval), and counts the equations that do not
hold within rounding (1% relative, or 0.005).

It reads only what is unambiguous: a side that has a word, a variable, a
function or implicit multiplication in it is skipped, as are `\\approx`,
code blocks (assignments, not claims) and equations with no operator on
either side (`x = 5`). So it finds slips, never proves a solution right: an
answer with no equation checked scores like one with every equation right.

    check_arithmetic(text) -> Arithmetic(checked=4, wrong=1, errors=["500-2500 = 250"])
    get_verifier("arithmetic")(prompts, completions) -> 0.5 ** wrong per completion
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from dataclasses import dataclass, field

from collm.verifiers.base import Verifier, step_texts

REL_TOL, ABS_TOL = 0.01, 0.005
MAX_POWER = 64  # 2 ** 64 is still arithmetic; 10 ** 10 ** 10 is not evaluated

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


@dataclass
class Arithmetic:
    checked: int = 0  # equations read and recomputed
    wrong: int = 0  # of those, the ones that do not hold
    errors: list[str] = field(default_factory=list)  # "lhs = rhs" of each wrong one

    @property
    def score(self) -> float:
        """1 when no slip was found, halved for each one."""
        return 0.5 ** self.wrong


def _value(node):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and (abs(b) > MAX_POWER or abs(a) > 1e6):
            raise ValueError("power too large")
        return _OPS[type(node.op)](a, b)
    raise ValueError("not arithmetic")


def evaluate(expr: str) -> float | None:
    """The value of a pure arithmetic expression (numbers, + - * / ** and
    parentheses), or None when it is anything else."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
        v = _value(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, TypeError, RecursionError):
        return None
    return v if v == v and abs(v) != float("inf") else None


def _has_op(expr: str) -> bool:
    return bool(re.search(r"[0-9)]\s*(?:[-+/]|\*\*?)\s*[-(0-9.]", expr))


_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_WORD_CMD = re.compile(r"\\(?:text|mathrm|textbf|mathbf|operatorname|textit|mbox)\s*\{[^{}]*\}")


def normalize(text: str) -> str:
    """Plain arithmetic from LaTeX and markdown: operators spelled as Python,
    words and units turned into a separator (W) that no expression crosses."""
    t = re.sub(r"```.*?(?:```|$)", "\n", text, flags=re.S)  # code: assignments, not claims
    t = re.sub(r"\\\[(.*?)\\\]", lambda m: " " + m.group(1).replace("\n", " ") + " \n", t, flags=re.S)
    t = re.sub(r"\\\((.*?)\\\)", lambda m: " " + m.group(1).replace("\n", " ") + " ", t, flags=re.S)
    t = t.replace("**", " W ").replace("\\approx", " W ").replace("\\neq", " W ").replace("≈", " W ")
    t = _WORD_CMD.sub(" W ", t)
    for _ in range(3):  # nested fractions
        t = _FRAC.sub(r"((\1)/(\2))", t)
    for a, b in (("\\times", "*"), ("\\cdot", "*"), ("×", "*"), ("·", "*"), ("∗", "*"), ("\\div", "/"), ("÷", "/"),
                 ("−", "-"), ("–", "-"), ("\\left", ""), ("\\right", ""), ("\\$", ""), ("$", ""), ("\\,", ""),
                 ("\\!", ""), ("\\;", " "), ("\\quad", " W "), ("^", "**"), ("{", "("), ("}", ")")):
        t = t.replace(a, b)
    t = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", t)  # 7,500 -> 7500
    t = re.sub(r"(\d+(?:\.\d+)?)\s*\\?%", r"(\1/100)", t)
    t = re.sub(r"\\[a-zA-Z]+", " W ", t)  # any other command is a word
    return t


_LEFT = re.compile(r"[0-9.\s+\-*/()]*$")
_RIGHT = re.compile(r"^[0-9.\s+\-*/()]*")


def _side(s: str, left: bool) -> str | None:
    """The arithmetic next to an '=': the end of the text before it (left) or
    the start of the text after it, or None if it is not a clean expression."""
    m = (_LEFT if left else _RIGHT).search(s)
    run = m.group(0)
    if left:
        before = s[:m.start()]
        if before and (before[-1].isalnum() or before[-1] in "_.^") and not run[:1].isspace():
            return None  # glued to a word or variable: x2 + 3, 3a + 1
        run = run.lstrip()
        if re.match(r"-\s", run):
            run = run[1:].lstrip()  # a list bullet or a dash, not a minus sign
        while run and (run[0] in ")*/+" or (run[0] == "(" and run.count("(") > run.count(")"))):
            run = run[1:].lstrip()
    else:
        after = s[m.end():]
        if after[:1].isalpha() and run and not run[-1].isspace():
            return None  # 3x, 2a: a variable, not a number
        run = run.rstrip()
        while run and (run[-1] in "(*/+-" or (run[-1] == ")" and run.count(")") > run.count("("))):
            run = run[:-1].rstrip()
    if not re.search(r"\d", run or ""):
        return None
    if re.search(r"[0-9)]\s*\(|\)\s*[0-9(]", run):
        return None  # implicit multiplication: 2(3 + 4), (a)(b)
    return run


def check_arithmetic(text: str) -> Arithmetic:
    out = Arithmetic()
    for line in normalize(text).split("\n"):
        parts = line.split("=")
        for a, b in zip(parts, parts[1:]):
            lhs, rhs = _side(a, True), _side(b, False)
            if lhs is None or rhs is None or not (_has_op(lhs) or _has_op(rhs)):
                continue
            x, y = evaluate(lhs), evaluate(rhs)
            if x is None or y is None:
                continue
            out.checked += 1
            if abs(x - y) > REL_TOL * max(abs(x), abs(y)) + ABS_TOL:
                out.wrong += 1
                out.errors.append(f"{lhs} = {rhs}")
    return out


@functools.lru_cache(maxsize=1 << 16)
def slips(text: str) -> int:
    """The number of equations in `text` that do not hold (cached: banks ask often)."""
    return check_arithmetic(text).wrong


class ArithmeticCheck(Verifier):
    """Outcome: 0.5 ** (wrong equations); process: the same per step."""

    name = "arithmetic"

    def score(self, prompts, completions):
        return [check_arithmetic(c.text).score for c in completions]

    def score_steps(self, prompts, completions):
        return [[check_arithmetic(s).score for s in step_texts(c)] for c in completions]
