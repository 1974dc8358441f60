"""Answer extraction and grading, registered by task name.

    task = get_task("gsm8k")
    task.extract(text)          -> canonical answer string, or None ("no answer")
    task.grade(answer, gold)    -> bool

An extractor never guesses: text with no recognisable answer gives None, and
an unfinished completion (cut at max_tokens) is never extracted by the
strategies.
"""

from collm.answers.registry import TASKS, Task, get_task, register_task
from collm.answers import numeric, mathexpr, choice  # noqa: F401  (registers the tasks)

__all__ = ["TASKS", "Task", "get_task", "register_task"]
