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
            pt, done = self.count_prompt_tokens(p)[0], sum(c.tokens for c in comps)
            out.append(Generation(comps, Usage(pt, done, 2.0 * self.params * (pt + done))))
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


def test_a_flops_budget_holds_under_the_threads():
    from collm.budget import minimum_flops

    pol = get_policy("early-stop", conf=0.9, n_max=8)
    backend = Indexed()
    params = SamplingParams(max_tokens=6)  # the fake's replies are 3-6 tokens: the worst case is near the real one
    free = answer_with_policy(backend, QS, get_task("number"), pol, params=params)
    spent_free = sum(a.usage.flops for a in free) / len(QS)
    least = minimum_flops([backend.count_prompt_tokens(q)[0] for q in QS], backend.params, 6) / len(QS)
    assert spent_free > least  # unbounded, the policy spends more than one worst-case greedy pass a prompt
    for flops in (least, 1.5 * least):
        got = answer_with_policy(backend, QS, get_task("number"), pol, flops=flops, params=params)
        assert sum(a.usage.flops for a in got) <= flops * len(QS)
        assert all(a.n >= 1 for a in got)
        assert sum(a.n for a in got) < sum(a.n for a in free)  # the cap bound: fewer samples than unbounded


def test_ask_takes_a_flops_budget_for_a_policy_only(tmp_path):
    import pytest

    from collm import Collm
    from collm.errors import CollmError

    path = tmp_path / "p.json"
    pol = get_policy("early-stop", conf=0.9, n_max=8)
    pol.model = {"name": "fake", "params": 1000}
    pol.save(str(path))
    llm = Collm(backend=Indexed(), task="number", policy=str(path))
    got = llm.ask(QS, flops=1e12)
    assert [a.n for a in got] == [a.n for a in answer_with_policy(Indexed(), QS, get_task("number"),
                                                                 get_policy("early-stop", conf=0.9, n_max=8))]
    with pytest.raises(CollmError, match="flops="):
        llm.ask(QS, n=4, flops=1e12)


class Ahead(Indexed):
    """An engine that says how many rows it decodes at once and takes a cancel
    event: the live sampler runs samples ahead of the policy on it."""

    max_rows = 64
    supports_cancel = True

    def generate(self, prompts, n=1, params=None, *, offsets=None, cancel=None):
        return super().generate(prompts, n, params, offsets=offsets)


def test_running_ahead_gives_the_policy_the_same_draws_and_counts_the_unused():
    pol = get_policy("early-stop", conf=0.9, n_max=8)
    base = answer_with_policy(Indexed(), QS, get_task("number"), pol, params=SamplingParams(max_tokens=16))
    got = answer_with_policy(Ahead(), QS, get_task("number"), pol, params=SamplingParams(max_tokens=16))
    assert [a.n for a in got] == [a.n for a in base]
    assert [[c.text for c in a.completions] for a in got] == [[c.text for c in a.completions] for a in base]
    unused = [a.extra["ran_ahead_unused"] for a in got]
    assert all(u == 2 for u in unused)  # LOOKAHEAD samples were running ahead of each prompt when it stopped
    for a, b in zip(got, base):  # the samples run ahead and never used are in the cost
        assert a.usage.completion_tokens > b.usage.completion_tokens and a.usage.flops > b.usage.flops


def test_running_ahead_stays_inside_a_flops_budget():
    from collm.allocation.live import least_flops

    pol = get_policy("early-stop", conf=0.9, n_max=8)
    params = SamplingParams(max_tokens=6)
    least = least_flops(Ahead(), QS, params)
    for flops in (least, 1.5 * least, 3 * least):
        got = answer_with_policy(Ahead(), QS, get_task("number"), pol, flops=flops, params=params)
        assert sum(a.usage.flops for a in got) <= flops * len(QS)
        assert all(a.n >= 1 for a in got)


def test_a_budget_picks_the_pace_calibrated_for_it():
    pol = get_policy("early-stop", conf=0.9, n_max=8)
    pol.state = {"paces": [{"samples": 1.9, "flops": 2e5, "learned": {"n_max": 2}},
                           {"samples": 3.9, "flops": 4e5, "learned": {"n_max": 4}}]}
    assert pol.paced().value("n_max") == 8  # no budget: the policy as it is
    assert pol.paced(samples=3).value("n_max") == 2  # the largest pace that fits
    assert pol.paced(samples=4).value("n_max") == 4
    assert pol.paced(samples=1.2).value("n_max") == 2  # none fits: the smallest
    assert pol.paced(flops=5e5, samples=1).value("n_max") == 4  # FLOPs first
    assert pol.value("n_max") == 8  # paced() leaves the policy itself alone
    # live: a generous budget runs at the pace of 4 generations, not 8
    got = answer_with_policy(Indexed(), QS, get_task("number"), pol, budget=4.5, params=SamplingParams(max_tokens=16))
    assert max(a.n for a in got) == 4 and sum(a.n for a in got) <= 4.5 * len(QS)


def test_no_running_ahead_when_the_engine_batch_is_full_already():
    class Busy(Ahead):
        def rows_in_use(self):
            return 16  # a quarter of max_rows: a server's other requests fill the batch

    pol = get_policy("early-stop", conf=0.9, n_max=8)
    got = answer_with_policy(Busy(), QS, get_task("number"), pol, params=SamplingParams(max_tokens=16))
    assert [a.extra["ran_ahead_unused"] for a in got] == [0] * len(QS)


class Idle(Ahead):
    """An engine that says how many rows it decodes now: none, then whatever the test sets."""

    max_rows = 32
    busy = 0

    def __init__(self):
        super().__init__()
        self.log = []  # (question, greedy, offset, start, end) of every call

    def rows_in_use(self):
        return self.busy

    def generate(self, prompts, n=1, params=None, *, offsets=None, cancel=None):
        import time

        t = time.monotonic()
        if params is not None and params.greedy:
            time.sleep(0.05)  # a greedy pass long enough for a sample to start beside it
        out = super().generate(prompts, n, params, offsets=offsets)
        self.log.append((prompts[0] if isinstance(prompts[0], str) else prompts[0].question,
                         bool(params is not None and params.greedy), (offsets or [0])[0], t, time.monotonic()))
        return out


def test_a_few_prompts_alone_are_rounds_bound_and_start_a_sample_beside_each_greedy_pass():
    from collm.samplers.live import LiveSampler

    pol = get_policy("early-stop", conf=0.9, n_max=8)
    params = SamplingParams(max_tokens=16)
    assert LiveSampler(Idle(), QS, get_task("number"), params).rounds_bound()  # 5 prompts x 2 rows <= 16
    many = Idle()
    assert not LiveSampler(many, QS * 4, get_task("number"), params).rounds_bound()  # 20 prompts: rows bind
    many.busy = 8
    assert not LiveSampler(many, QS, get_task("number"), params).rounds_bound()  # a server's other requests
    base = answer_with_policy(Indexed(), QS, get_task("number"), pol, params=params)
    got = answer_with_policy(Idle(), QS, get_task("number"), pol, params=params)
    assert [a.n for a in got] == [a.n for a in base]  # the same draws, the same decisions
    assert [[c.text for c in a.completions] for a in got] == [[c.text for c in a.completions] for a in base]
    idle = Idle()
    answer_with_policy(idle, QS, get_task("number"), pol, params=params)
    for q in QS:  # each prompt's first sample started before its greedy pass ended
        greedy_end = min(e for qq, g, _, _, e in idle.log if qq == q and g)
        first = min(t for qq, g, off, t, _ in idle.log if qq == q and not g and off == 0)
        assert first < greedy_end, q
    busy = Idle()
    busy.busy = 8
    answer_with_policy(busy, QS, get_task("number"), pol, params=params)
    for q in QS:  # not where the engine is busy: samples only once the greedy pass is in
        greedy_end = min(e for qq, g, _, _, e in busy.log if qq == q and g)
        assert all(t >= greedy_end for qq, g, _, t, _ in busy.log if qq == q and not g), q
