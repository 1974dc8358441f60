"""Verifier-guided strategies on a deterministic scripted model (pure logic:
step bookkeeping, batching, FLOPs, unfinished candidates), the CLI options,
the strategy-selection policy; and, marked `model`, every strategy end to end
on the real SmolLM2."""

from __future__ import annotations

import argparse
import json
import math

import pytest
from conftest import FakeBackend

from collm.answers import get_task
from collm.errors import CollmError
from collm.prompts import Prompt
from collm.strategies import STRATEGIES, get_strategy
from collm.strategies.options import add_strategy_args, strategy_kwargs
from collm.strategies.revisions import REVISE, chain_lengths, revision_prompt
from collm.strategies.select import StrategyPolicy, fit_strategy_policy
from collm.strategies.steps import Path, step_end
from collm.types import Completion, SamplingParams


# ---- a deterministic stand-in model: it knows a few scripted solutions per
# question and writes them one blank-line-separated step at a time, like an
# engine with stop=["\n\n"]. A word is a token; every token of a solution has
# the solution's log-prob. Sample i of a call continues solution
# (seed + i + len(prefix)) mod (matching solutions).
class FakeStepBackend(FakeBackend):
    name = "fake-steps"

    def __init__(self, scripts: dict[str, list[tuple[str, float]]], keep_stop: bool = False):
        super().__init__()
        self.scripts = scripts  # question -> [(solution text, per-token log-prob)]
        self.keep_stop = keep_stop  # an engine that leaves the stop string in the text

    def score_prompt(self, prompts):
        raise NotImplementedError

    def reply(self, p, i, params):
        prefix = p.assistant_prefix
        q = p.question if p.question in self.scripts else p.history[0]["content"]  # a revision turn
        sols = [s for s in self.scripts[q] if s[0].startswith(prefix)] or self.scripts[q][:1]
        k = 0 if params.temperature == 0 else ((params.seed or 0) + i + len(prefix)) % len(sols)
        text, lp = sols[k]
        rest = text[len(prefix):] if text.startswith(prefix) else text
        return self._piece(rest, lp, params.max_tokens, list(params.stop))

    def prompt_tokens(self, p):
        return len((p.question + " " + p.assistant_prefix + " ".join(m["content"] for m in p.history)).split())

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


TASK = get_task("gsm8k")
Q1, Q2, Q3 = "What is 2 + 3?", "What is 4 + 4?", "What is 10 - 7?"


def scripts():
    # the right answer is the model's most confident path, but not its most frequent answer
    return {
        Q1: [script(["Two plus three", "is five"], "5", 0.9), script(["Two plus three", "is six"], "6", 0.3),
             script(["Two plus three", "maybe six"], "6", 0.3)],
        Q2: [script(["Four and four", "make eight"], "8", 0.95), script(["Four and four", "make nine"], "9", 0.2),
             script(["Four and four", "make nine!"], "9", 0.2)],
        Q3: [script(["Ten minus seven", "leaves three"], "3", 0.8), script(["Ten minus seven", "leaves four"], "4", 0.4),
             script(["Ten minus seven", "leaves four."], "4", 0.4)],
    }


# ---- step bookkeeping ----
def test_step_end_tells_a_step_from_an_answer_from_a_cut():
    stop = ["\n\n"]
    assert step_end(Completion("x", 1, 0.0, [0.0], "stop", stop_reason="\n\n"), stop) == "step"
    assert step_end(Completion("x\n\n", 1, 0.0, [0.0], "stop"), stop) == "step"  # engine kept the stop string
    assert step_end(Completion("x \\boxed{1}", 1, 0.0, [0.0], "stop"), stop) == "eos"
    assert step_end(Completion("x", 1, 0.0, [0.0], "length"), stop) == "length"
    root = Path(Prompt("q"), 0)
    kid = root.child(Completion("a", 1, -0.1, [-0.1], "stop", stop_reason="\n\n"), stop, max_tokens=10)
    assert kid.state == "active" and kid.text == "a\n\n" and kid.prompt_so_far().assistant_prefix == "a\n\n"
    long_step = kid.child(Completion("b c", 2, -0.2, [-0.1, -0.1], "length"), stop, max_tokens=10)
    assert long_step.state == "active"  # cut by the per-step cap, budget left: goes on
    over = long_step.child(Completion("d " * 8, 8, -0.8, [-0.1] * 8, "length"), stop, max_tokens=10)
    assert over.state == "unfinished" and over.completion().finish_reason == "length"
    done = kid.child(Completion("\\boxed{1}", 1, -0.1, [-0.1], "stop"), stop, max_tokens=10)
    assert done.state == "finished" and done.completion().steps == ["a\n\n", "\\boxed{1}"]


@pytest.mark.parametrize("keep_stop", [False, True])
def test_verifier_guided_strategies_beat_majority_on_the_scripted_model(keep_stop):
    b = FakeStepBackend(scripts(), keep_stop=keep_stop)
    qs = [Q1, Q2, Q3]
    maj = get_strategy("majority").run(b, qs, 3, TASK, params=SamplingParams(top_k=0, max_tokens=50))
    assert [a.answer for a in maj] == ["6", "9", "4"]
    for name, kw in [("weighted", {}), ("best", {}), ("beam", {"beam_width": 3}), ("dvts", {"beam_width": 3}),
                     ("lookahead", {"lookahead": 1, "beam_width": 3})]:
        got = get_strategy(name, **kw).run(b, qs, 3, TASK, params=SamplingParams(top_k=0, max_tokens=50))
        assert [a.answer for a in got] == ["5", "8", "3"], name
        assert all(a.n == (6 if name == "lookahead" else 3) and a.strategy == name for a in got)


def test_search_is_batched_across_prompts_and_flops_are_the_calls_sum():
    for name, kw in [("beam", {"beam_width": 2}), ("dvts", {"beam_width": 2}), ("lookahead", {"lookahead": 1})]:
        one, many = FakeStepBackend(scripts()), FakeStepBackend(scripts())
        get_strategy(name, **kw).run(one, [Q1], 4, TASK, params=SamplingParams(top_k=0, max_tokens=50))
        got = get_strategy(name, **kw).run(many, [Q1, Q2, Q3], 4, TASK, params=SamplingParams(top_k=0, max_tokens=50))
        assert len(many.calls) == len(one.calls), name  # one call per round, whatever the prompt count
        assert sum(a.usage.flops for a in got) == pytest.approx(sum(c.usage.flops for c in many.calls))
        assert sum(a.usage.completion_tokens for a in got) == sum(c.usage.completion_tokens for c in many.calls)
        for c in many.calls:
            assert len({p.question for p in c.prompts}) == 3  # every round covers all three prompts
        if name == "lookahead":
            rollouts = [c for c in many.calls if c.params.temperature == 0.0]
            assert rollouts and all(c.n == 1 for c in rollouts)
            assert all(a.extra["rollout_generations"] > 0 for a in got)


def test_each_prompt_may_have_its_own_budget():
    for name, kw in [("beam", {"beam_width": 2}), ("dvts", {"beam_width": 2}), ("revisions", {}), ("weighted", {})]:
        got = get_strategy(name, **kw).run(FakeStepBackend(scripts()), [Q1, Q2, Q3], [1, 4, 8], TASK, params=SamplingParams(top_k=0, max_tokens=50))
        assert [a.n for a in got] == [1, 4, 8], name
        assert all(a.answer is not None and a.usage.flops > 0 for a in got), name


def test_beam_and_dvts_spend_at_most_n_generations_per_round():
    b = FakeStepBackend(scripts())
    a = get_strategy("beam", beam_width=2).run(b, [Q1], 8, TASK, params=SamplingParams(top_k=0, max_tokens=50))[0]
    per_round = [len(c.prompts) * c.n for c in b.calls]
    assert per_round[0] == 8 and all(x <= 8 for x in per_round)
    assert a.extra["step_generations"] == sum(per_round)
    b = FakeStepBackend(scripts())
    a = get_strategy("dvts", beam_width=2).run(b, [Q1], 8, TASK, params=SamplingParams(top_k=0, max_tokens=50))[0]
    assert b.calls[0].n == 8  # 4 subtrees x 2 from the shared root: one call
    assert all(len(c.prompts) <= 4 and c.n == 2 for c in b.calls[1:])  # one path per subtree


def test_unfinished_candidates_never_become_answers():
    sc = {Q1: [script(["Two plus three " + "is really " * 30, "so"], "7", 0.99),  # the model's favourite, too long
               script(["Two plus three", "is five"], "5", 0.3)]}
    for name in ("beam", "dvts", "weighted", "best"):
        a = get_strategy(name, beam_width=2).run(FakeStepBackend(sc), [Q1], 4, TASK, params=SamplingParams(top_k=0, max_tokens=30))[0] \
            if name in ("beam", "dvts") else get_strategy(name).run(FakeStepBackend(sc), [Q1], 4, TASK, params=SamplingParams(top_k=0, max_tokens=30))[0]
        assert a.answer == "5" and "7" not in a.votes, name
    only_long = {Q1: [sc[Q1][0]]}
    for name in ("beam", "dvts", "lookahead"):
        a = get_strategy(name).run(FakeStepBackend(only_long), [Q1], 2, TASK, params=SamplingParams(top_k=0, max_tokens=30))[0]
        assert a.answer is None and a.votes == {} and a.extra["unfinished"] > 0 and a.completions == []


def test_the_last_round_lets_paths_finish():
    sc = {Q1: [script(["a", "b", "c", "d", "e"], "5", 0.9)]}
    b = FakeStepBackend(sc)
    a = get_strategy("beam", beam_width=1, max_steps=2).run(b, [Q1], 1, TASK, params=SamplingParams(top_k=0, max_tokens=100))[0]
    assert a.answer == "5" and a.extra["rounds"] == 2
    assert b.calls[0].params.stop == ("\n\n",) and not b.calls[-1].params.stop


def test_revisions_chains_see_their_earlier_attempts():
    assert chain_lengths(16, None, 1.0) == [4] * 4
    assert chain_lengths(8, 3, 1.0) == [4, 4]  # two chains of 3, the remainder spread
    assert sum(chain_lengths(7, None, 4.0)) == 7
    assert chain_lengths(4, None, 1 / 16) == [1, 1, 1, 1]  # all parallel: best-of-N
    p = revision_prompt(Prompt(Q1), ["first try", "second try"], window=4)
    assert p.question == REVISE and [m["content"] for m in p.history] == [Q1, "first try", REVISE, "second try"]
    b = FakeStepBackend(scripts())
    a = get_strategy("revisions", revisions=3).run(b, [Q1, Q2], 6, TASK, params=SamplingParams(top_k=0, max_tokens=50))
    assert len(b.calls) == 3  # rounds, not prompts x chains
    assert b.calls[0].n == 2 and len(b.calls[1].prompts) == 4
    assert a[0].extra["chains"] == 2 and len(a[0].completions) == 6
    assert sum(x.usage.flops for x in a) == pytest.approx(sum(c.usage.flops for c in b.calls))
    w = get_strategy("revisions", revisions=3, final="best").run(FakeStepBackend(scripts()), [Q1], 6, TASK,
                                                                      params=SamplingParams(top_k=0, max_tokens=50))[0]
    assert w.answer == "5"


def test_a_failing_remote_verifier_stops_the_strategy_with_a_clear_error():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/pooling"
    sock.close()  # nothing listens there now
    for name in ("weighted", "beam", "dvts"):
        b = FakeStepBackend(scripts())
        with pytest.raises(CollmError, match="unreachable"):
            get_strategy(name, verifier=url, verifier_options={"timeout": 2}).run(b, [Q1], 2, TASK, params=SamplingParams(top_k=0, max_tokens=50))
        assert b.calls == []  # it failed before spending any generation


def test_bad_settings_are_clear_errors():
    for name, kw, match in [("beam", {"beam_width": 0}, "beam width"), ("lookahead", {"lookahead": 0}, "lookahead"),
                            ("beam", {"final": "vote"}, "final"), ("revisions", {"revisions": 0}, "revisions"),
                            ("revisions", {"seq_ratio": 0}, "ratio"), ("nope", {}, "unknown strategy")]:
        with pytest.raises(CollmError, match=match):
            get_strategy(name, **kw)


# ---- CLI options ----
def _args(*argv):
    p = argparse.ArgumentParser()
    add_strategy_args(p)
    return p.parse_args(list(argv))


def test_strategy_options_build_every_strategy():
    for argv in [["--strategy", "majority"], ["--strategy", "weighted"], ["--strategy", "best"],
                 ["--strategy", "beam", "--beam-width", "2"], ["--strategy", "dvts", "--beam-width", "2"],
                 ["--strategy", "lookahead", "--lookahead", "1", "--aggregation", "min"],
                 ["--strategy", "revisions", "--revisions", "2"], ["--strategy", "revisions", "--final", "weighted"],
                 ["--strategy", "weighted", "--verifier", "http://127.0.0.1:1/classify", "--verifier-fallback",
                  "self-certainty"]]:
        name, kw = strategy_kwargs(_args(*argv))
        s = get_strategy(name, **kw)
        assert s.name == name
    name, kw = strategy_kwargs(_args("--strategy", "lookahead", "--lookahead", "3", "--beam-width", "2"))
    s = get_strategy(name, **kw)
    assert (s.lookahead, s.beam_width, s.verifier.mode) == (3, 2, "process")
    assert set(STRATEGIES) >= {"majority", "weighted", "best", "beam", "lookahead", "dvts", "revisions"}


@pytest.mark.parametrize("argv,match", [
    (["--strategy", "majority", "--beam-width", "4"], "does not apply to the majority"),
    (["--strategy", "beam", "--lookahead", "2"], "does not apply to the beam"),
    (["--strategy", "beam", "--beam-width", "0"], "at least 1"),
    (["--strategy", "weighted", "--verifier-model", "x"], "remote verifier"),
    (["--strategy", "weighted", "--verifier", "oracle"], "unknown verifier"),
    (["--strategy", "wat"], "unknown strategy"),
])
def test_strategy_options_refuse_what_does_not_apply(argv, match):
    with pytest.raises(CollmError, match=match):
        strategy_kwargs(_args(*argv))


# ---- strategy selection ----
def test_strategy_policy_cross_validates_and_round_trips(tmp_path):
    recs = []
    for p in range(20):
        b = 1 + p % 2
        for n in (4, 16):
            # beam wins on bin 1, majority on bin 2 (it always is right there)
            recs.append({"problem": p, "bin": b, "budget": n, "strategy": "majority", "settings": {},
                         "correct": b == 2 or p % 4 == 0})
            recs.append({"problem": p, "bin": b, "budget": n, "strategy": "beam", "settings": {"beam_width": 4},
                         "correct": b == 1})
    pol = fit_strategy_policy(recs)
    path = tmp_path / "strategy_policy.json"
    pol.save(path)
    q = StrategyPolicy.from_file(path)
    assert q.choose(1, 16) == ("beam", {"beam_width": 4})
    assert q.choose(2, 4) == ("majority", {})
    assert q.choose(1, 100) == ("beam", {"beam_width": 4}) and q.choose(1, 1) == ("beam", {"beam_width": 4})
    assert q.cv["1/16"]["held_out_accuracy"] == 1.0 and q.cv["1/16"]["majority_accuracy"] < 1.0
    name, settings = q.choose(1, 16)
    assert get_strategy(name, **settings).beam_width == 4
    with pytest.raises(CollmError, match="no difficulty bin 7"):
        q.choose(7, 4)
    (tmp_path / "bad.json").write_text(json.dumps({"table": {}}))
    with pytest.raises(CollmError, match="not a strategy policy"):
        StrategyPolicy.from_file(tmp_path / "bad.json")
    with pytest.raises(CollmError, match="not found"):
        StrategyPolicy.from_file(tmp_path / "none.json")


# ---- the real model, end to end ----
@pytest.fixture(scope="module")
def smollm():
    from collm.backends import load_backend

    b = load_backend("smollm2-135m")
    yield b
    b.close()


@pytest.mark.model
def test_the_engine_tells_a_stop_string_from_the_end_of_the_answer(smollm):
    g = smollm.generate(["Name three colours."], n=2, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=24, seed=0, stop=[" "]))[0]
    for c in g.completions:  # a space comes within 24 tokens: each stops on it, and says so
        assert c.finish_reason == "stop" and c.stop_reason == " " and step_end(c, [" "]) == "step"
    g = smollm.generate(["Say OK."], n=1, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=4, seed=0))[0]
    assert g.completions[0].stop_reason is None


@pytest.mark.model
@pytest.mark.parametrize("name,kw", [
    ("weighted", {}), ("best", {}), ("beam", {"beam_width": 2, "max_steps": 3, "step_tokens": 8}),
    ("dvts", {"beam_width": 2, "max_steps": 3, "step_tokens": 8}),
    ("lookahead", {"lookahead": 1, "beam_width": 2, "max_steps": 2, "step_tokens": 8}),
    ("revisions", {"revisions": 2}),
])
def test_every_strategy_runs_on_the_real_model(smollm, name, kw):
    qs = ["What is 3 + 4? Reply with the number only."]
    if name == "beam":  # batched across two prompts
        qs.append("Tom has 2 apples and buys 3 more. How many apples does he have?")
    got = get_strategy(name, **kw).run(smollm, qs, 2, TASK, params=SamplingParams(top_k=0, max_tokens=16, seed=1))
    assert len(got) == len(qs)
    for a in got:
        assert a.strategy == name and a.n == (4 if name == "lookahead" else 2) and a.usage.flops > 0 and a.usage.completion_tokens > 0
        assert all(c.finished for c in a.completions if c.answer is not None)
        if a.answer is not None:
            assert a.answer in a.votes
        json.dumps(a.to_dict(with_completions=True))


@pytest.mark.model
def test_ask_cli_runs_beam_search(capsys):
    from collm.cli import main

    rc = main(["ask", "What is 3 + 4?", "--model", "smollm2-135m", "--strategy", "beam", "--n", "2",
               "--beam-width", "2", "--max-steps", "2", "--step-tokens", "8", "--max-tokens", "16", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)
    assert d["strategy"] == "beam" and d["n"] == 2 and d["usage"]["flops"] > 0 and "verifier" in d


def test_the_bank_replay_votes_agree_with_collm_vote():
    """collm.strategies.replay votes weighted and best-of-N vectorised over a
    bank; on random draws it must pick what collm.vote picks one by one."""
    import numpy as np

    from collm.strategies.replay import best_correct, weighted_correct
    from collm.vote import best_score, weighted

    rng = np.random.default_rng(0)
    ans = rng.integers(-1, 4, size=(300, 8))
    ok = np.zeros_like(ans, bool)
    right = rng.integers(0, 4, size=300)
    ok[ans == right[:, None]] = True
    w = rng.choice([0.25, 0.5, 1.0], size=ans.shape)  # coarse: ties happen
    ks = [1, 2, 4, 8]
    wc, bc = weighted_correct(ans, ok, w, ks), best_correct(ans, ok, w, ks)
    for i in range(300):
        for j, k in enumerate(ks):
            a = [str(x) if x >= 0 else None for x in ans[i, :k]]
            wa, ba = weighted(a, list(w[i, :k]))[0], best_score(a, list(w[i, :k]))
            assert wc[i, j] == (wa is not None and int(wa) == right[i]), (i, k)
            assert bc[i, j] == (ba is not None and int(ba) == right[i]), (i, k)
