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


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise CollmError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}") from None
