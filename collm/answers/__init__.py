"""Answer extraction and grading, registered by task name.

    task = get_task("gsm8k")
    task.extract(text)          -> canonical answer string, or None ("no answer")
    task.grade(answer, gold)    -> bool
    extract_all(completions, task) -> each completion's answer (None when unfinished)

An extractor never guesses: text with no recognisable answer gives None, and
an unfinished completion (cut at max_tokens) is never extracted by the
strategies.
"""

from collm.answers import choice, freeform, mathexpr, numeric, program  # noqa: F401  (registers the tasks and NAME+program)
from collm.answers.registry import TASKS, Task, extract_all, get_task, register_task

__all__ = ["TASKS", "Task", "extract_all", "get_task", "register_task"]
