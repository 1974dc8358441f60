from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from collm.errors import CollmError


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


def get_task(name: str) -> Task:
    """A registered task; "NAME+program" is NAME answering with what the
    solution's own Python prints where it has code (collm.answers.program)."""
    if name.endswith(PROGRAM_SUFFIX) and name != PROGRAM_SUFFIX:
        from collm.answers.program import program_task

        return program_task(get_task(name[: -len(PROGRAM_SUFFIX)]))
    try:
        return TASKS[name]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        raise CollmError(f"unknown task {name!r}; known: {known} (each also as NAME{PROGRAM_SUFFIX})") from None
