"""A deterministic stand-in model for search tests: it knows a few scripted
solutions per question and writes them one blank-line-separated step at a
time, like an engine with stop=["\\n\\n"]. A word is a token; every token of
a solution has the solution's log-prob `lp`. Sample i of a call continues
solution (seed + i + len(prefix)) mod (matching solutions)."""

from __future__ import annotations

import math

from collm.backends.base import Backend
from collm.flops import inference_flops
from collm.prompts import as_prompt
from collm.types import Completion, Generation, Usage


class FakeStepBackend(Backend):
    name = "fake-steps"
    params = 1000
    context_length = 100000

    def __init__(self, scripts: dict[str, list[tuple[str, float]]], keep_stop: bool = False):
        self.scripts = scripts  # question -> [(solution text, per-token log-prob)]
        self.keep_stop = keep_stop  # an engine that leaves the stop string in the text
        self.calls: list[dict] = []

    def score_prompt(self, prompts):
        raise NotImplementedError

    def generate(self, prompts, n=1, temperature=0.0, top_p=1.0, max_tokens=256, seed=None, stop=None):
        prompts = self.check_request(prompts, n, max_tokens, temperature, top_p)
        out, total = [], Usage()
        for p in prompts:
            prefix = p.assistant_prefix
            q = p.question if p.question in self.scripts else p.history[0]["content"]  # a revision turn
            sols = [s for s in self.scripts[q] if s[0].startswith(prefix)] or self.scripts[q][:1]
            comps = []
            for i in range(n):
                k = 0 if temperature == 0 else ((seed or 0) + i + len(prefix)) % len(sols)
                text, lp = sols[k]
                rest = text[len(prefix):] if text.startswith(prefix) else text
                comps.append(self._piece(rest, lp, max_tokens, stop))
            ptoks = len((p.question + " " + p.assistant_prefix + " ".join(m["content"] for m in p.history)).split())
            u = Usage(ptoks, sum(c.tokens for c in comps), inference_flops(self.params, ptoks + sum(c.tokens for c in comps)))
            total += u
            out.append(Generation(comps, u))
        self.calls.append({"prompts": prompts, "n": n, "temperature": temperature, "max_tokens": max_tokens,
                           "stop": stop, "usage": total})
        return out

    def _piece(self, rest, lp, max_tokens, stop):
        cut, reason, sr = rest, "stop", None
        if stop:
            for s in stop:
                at = rest.find(s)
                if at >= 0 and at + len(s) < len(rest):  # a stop string before the end
                    cut, sr = rest[:at + len(s)] if self.keep_stop else rest[:at], s
                    break
        words = cut.split(" ")
        if len(words) > max_tokens:
            cut, reason, sr = " ".join(words[:max_tokens]), "length", None
            words = words[:max_tokens]
        n = len(words)
        return Completion(cut, n, lp * n, [lp] * n, reason, stop_reason=sr if not self.keep_stop else None)


def script(steps: list[str], answer: str, p: float) -> tuple[str, float]:
    return "\n\n".join(steps + [f"The answer is \\boxed{{{answer}}}."]), math.log(p)
