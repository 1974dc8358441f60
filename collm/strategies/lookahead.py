"""Lookahead search (Snell et al. 2024, sec. 5.2): beam search in which a
candidate step is scored not where it stands but where a greedy (temperature
0) rollout of up to k more steps leads; the rollout only scores, the path
keeps its one new step. Each expansion costs k + 1 generations' worth of
steps, so N beams cost about N(k + 1): run(n=N) reports n = N(k + 1), and
the usage (FLOPs) counts every rollout token. To compare with best-of-N at a
budget B, give it n = B // (k + 1) beams. k = 0 is beam search.
"""

from __future__ import annotations

from collm.errors import CollmError
from collm.strategies.base import register_strategy
from collm.strategies.beam import BeamSearch


@register_strategy
class Lookahead(BeamSearch):
    name = "lookahead"

    def __init__(self, lookahead: int = 2, beam_width: int = 4, **kwargs):
        if lookahead < 1:
            raise CollmError(f"lookahead search needs --lookahead of at least 1 (got {lookahead}); 0 is beam search")
        super().__init__(beam_width=beam_width, lookahead=lookahead, **kwargs)
