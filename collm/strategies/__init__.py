"""Strategies: how a prompt's generation budget is spent and aggregated.

    strategy = get_strategy("majority")
    answers = strategy.run(backend, prompts, n=[1, 8, 4], task=get_task("gsm8k"))

Each returns one Answer per prompt with its votes and exact usage (FLOPs).
"""

from collm.strategies.base import STRATEGIES, Answer, Strategy, get_strategy, register_strategy
from collm.strategies import sampling  # noqa: F401  (registers greedy, sample, majority)
from collm.strategies import weighted, beam, lookahead, dvts, revisions  # noqa: F401,E402  (verifier-guided search)

__all__ = ["STRATEGIES", "Answer", "Strategy", "get_strategy", "register_strategy"]
