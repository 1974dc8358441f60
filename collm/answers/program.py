"""Program answers: run the Python a solution wrote and read what it prints.

A code model asked to reason step by step often writes a ```python block and
then, having no interpreter, invents its ```output. Running the program gives
what the model's own program computes, which is right more often than the
number it made up (bench/results/arithmetic_check.md measures it). This is
program-aided answering (PAL, Gao et al. 2023; PoT, Chen et al. 2022) applied
after the fact: no model call, only the program's CPU time.

    program_answer(text)   -> the last number the solution's code prints, or None
    run_program(code)      -> RunResult(ok, stdout, error, seconds)
    get_task("gsm8k+program") -> the gsm8k task answering with the printed number
                              where the solution has code that prints one

Each program runs in a fresh `python -I` subprocess, in an empty temporary
directory, with no stdin, an empty environment, and limits on CPU time
(2 s), memory (512 MiB) and file size (1 MiB), killed after a wall-clock
timeout. That is containment for accidents (an endless loop, a huge list),
not a security boundary: the code still has the network and the user's
files. It is off unless asked for (`--execute-code`); run it only on the
output of a model you serve yourself.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from collm.answers.registry import PROGRAM_SUFFIX, Task, register_variant

CPU_S, MEMORY_MB, FILE_MB, WALL_S = 2, 512, 1, 5.0
_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)(?:```|$)", re.S)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class RunResult:
    ok: bool  # exited 0 within the limits
    stdout: str
    error: str = ""  # last line of stderr, or "timeout"
    seconds: float = 0.0


def python_blocks(text: str) -> list[str]:
    """The ```python code blocks of a solution, in order."""
    return [b for b in _BLOCK.findall(text) if b.strip()]


def _limits():  # runs in the child before exec
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (CPU_S, CPU_S))
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_MB << 20, MEMORY_MB << 20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_MB << 20, FILE_MB << 20))


@functools.lru_cache(maxsize=1 << 14)
def run_program(code: str, timeout: float = WALL_S) -> RunResult:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="collm-run-") as d:
        try:
            p = subprocess.run([sys.executable, "-I", "-c", code], cwd=d, env={}, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=timeout, preexec_fn=_limits)
        except subprocess.TimeoutExpired:
            return RunResult(False, "", "timeout", time.perf_counter() - t0)
        except OSError as e:
            return RunResult(False, "", f"could not start python: {e}", time.perf_counter() - t0)
    err = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    if p.returncode < 0 and not err:
        err = f"killed by signal {-p.returncode} (a limit was hit)"
    return RunResult(p.returncode == 0, p.stdout, err, time.perf_counter() - t0)


def last_number(s: str) -> str | None:
    """The last number in s, written canonically ("18", "2.5"), or None."""
    found = _NUMBER.findall(s or "")
    if not found:
        return None
    try:
        x = float(found[-1].replace(",", ""))
    except ValueError:
        return None
    if x != x or abs(x) == float("inf"):
        return None
    return str(int(x)) if x == int(x) and abs(x) < 1e15 else repr(round(x, 6))


def program_task(task):
    """`task` with an extractor that prefers the number the solution's code prints."""
    def extract(text: str):
        a = program_answer(text)
        return a if a is not None else task.extract(text)

    return Task(task.name + PROGRAM_SUFFIX, extract, task.grade,
                f"{task.description} Where the solution has Python code that runs and prints a number, "
                "that number is the answer.".strip())


def program_answer(text: str) -> str | None:
    """Run the solution's Python blocks (joined, in order) and return the last
    number printed; None when there is no code, it fails, or prints no number."""
    blocks = python_blocks(text)
    if not blocks:
        return None
    r = run_program("\n".join(blocks))
    return last_number(r.stdout) if r.ok else None


register_variant(PROGRAM_SUFFIX, program_task)
