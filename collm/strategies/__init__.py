"""Strategies: how a prompt's generation budget is spent and aggregated.

    strategy = get_strategy("majority")
    answers = strategy.run(backend, prompts, [1, 8, 4], get_task("gsm8k"), SamplingParams(temperature=0.8))

Each returns one Answer per prompt with its votes and exact usage (FLOPs).
"""

from collm.strategies import (  # noqa: F401,E402  (verifier-guided search)
    beam,
    dvts,
    lookahead,
    revisions,
    sampling,  # noqa: F401  (registers greedy, sample, majority)
    weighted,
)
from collm.strategies.base import STRATEGIES, Strategy, get_strategy, register_strategy
from collm.types import Answer

__all__ = ["STRATEGIES", "Answer", "Strategy", "get_strategy", "register_strategy"]
