"""Diverse verifier tree search (Beeching et al. 2024, "Scaling test-time
compute with open models"): split the budget of N generations into N/M
independent subtrees; each samples M next steps from its single current
path and keeps the verifier's favourite, step by step, until its path ends.
Beam search lets a few strong prefixes take every slot; DVTS keeps N/M
separate lines of thought, which helps most at large N and on easy problems.
The final answer: verifier-weighted vote over the subtrees' finished answers
(and any other answers that ended along the way).

Batched like beam search: one backend call per round over all prompts and
subtrees.
"""

from __future__ import annotations

from collm.strategies.base import register_strategy
from collm.strategies.beam import BeamSearch


@register_strategy
class DVTS(BeamSearch):
    name = "dvts"

    def __init__(self, beam_width: int = 4, **kwargs):
        kwargs.pop("subtrees", None)
        super().__init__(beam_width=beam_width, subtrees=True, **kwargs)
