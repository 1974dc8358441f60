"""A policy on a live backend that batches concurrent calls: every prompt runs
the policy in its own thread (collm.samplers.live), against one budget. On a
deterministic backend whose samples depend on the prompt and the sample's
index only, the concurrent run gives each prompt exactly what the round-based
run gives; a binding budget holds under the threads."""

from __future__ import annotations

import zlib

from collm.allocation import get_policy
from collm.allocation.live import answer_with_policy
from collm.answers import get_task
from collm.types import Completion, Generation, SamplingParams, Usage

from conftest import FakeBackend

QS = ["easy one?", "a hard question", "another hard question", "easy two?", "medium, maybe?"]


class Indexed(FakeBackend):
    """Sample r of a prompt (its index among all the prompt's samples: offsets
    + r) answers from the question's own cycle; easy questions always agree."""

    thread_safe = True

    def answer(self, q: str, r: int) -> str:
        if q.startswith("easy"):
            return "1"
        cycle = ["7", "9", "7", "3", "9", "9", "7", "2"][zlib.crc32(q.encode()) % 3:]
        return cycle[r % len(cycle)]

    def generate(self, prompts, n=1, params=None, *, offsets=None):
        prompts, params = self.check_request(prompts, n, params)
        first = offsets or [0] * len(prompts)
        out = []
        for p, f in zip(prompts, first):
            comps = [Completion(f"so \\boxed{{{self.answer(p.question, -1 if params.greedy else f + r)}}}",
                                3 + (f + r) % 4, -1.0) for r in range(n)]
            out.append(Generation(comps, Usage(10, sum(c.tokens for c in comps), 2.0 * self.params * 10)))
        with self._mu:
            self.calls.append(len(prompts))
        return out


class Serial(Indexed):
    thread_safe = False


def run(backend, budget=None):
    pol = get_policy("early-stop", conf=0.9, n_max=8)
    return answer_with_policy(backend, QS, get_task("number"), pol, budget=budget, params=SamplingParams(max_tokens=16))


def test_the_concurrent_run_gives_each_prompt_what_the_rounds_give():
    a, b = run(Indexed()), run(Serial())
    assert [x.n for x in a] == [x.n for x in b]
    assert [x.answer for x in a] == [x.answer for x in b]
    assert [[c.text for c in x.completions] for x in a] == [[c.text for c in x.completions] for x in b]
    assert [x.usage.completion_tokens for x in a] == [x.usage.completion_tokens for x in b]
    assert a[0].n < a[1].n  # the easy prompt stopped early, the hard one went on


def test_one_budget_holds_under_the_threads():
    for budget in (1.0, 1.6, 3.0):
        got = run(Indexed(), budget=budget)
        assert sum(x.n for x in got) <= budget * len(QS) + 1e-9
        assert all(x.n >= 1 for x in got)  # every prompt got its greedy pass
