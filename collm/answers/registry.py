from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from collm.errors import CollmError
from collm.types import Completion


@dataclass(frozen=True)
class Task:
    name: str
    extract: Callable[[str], str | None]
    grade: Callable[[str | None, str], bool]
    description: str = ""


TASKS: dict[str, Task] = {}


def register_task(name: str, extract, grade, description: str = "") -> Task:
    task = Task(name, extract, grade, description)
    TASKS[name] = task
    return task


PROGRAM_SUFFIX = "+program"

# suffix -> a function making NAME+suffix from task NAME (collm.answers.program registers "+program")
VARIANTS: dict[str, Callable[[Task], Task]] = {}


def register_variant(suffix: str, make: Callable[[Task], Task]) -> None:
    VARIANTS[suffix] = make


def get_task(name: str) -> Task:
    """A registered task; "NAME+program" is NAME answering with what the
    solution's own Python prints where it has code (collm.answers.program)."""
    for suffix, make in VARIANTS.items():
        if name.endswith(suffix) and name != suffix:
            return make(get_task(name[: -len(suffix)]))
    try:
        return TASKS[name]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise CollmError(f"unknown task {name!r}; known: {known} (each also as NAME{PROGRAM_SUFFIX})") from None


def extract_all(completions: Sequence[Completion], task: Task) -> list[str | None]:
    """Fill each completion's answer; unfinished ones (cut at max_tokens) get None."""
    out = []
    for c in completions:
        c.answer = task.extract(c.text) if c.finished else None
        out.append(c.answer)
    return out
