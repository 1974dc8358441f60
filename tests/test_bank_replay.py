"""The replay backend serves a bank's draws in the order `collm eval` replays
them, so strategies run on it unchanged and agree with the vectorised curves."""

import json

import numpy as np
import pytest

from collm.answers import get_task
from collm.backends.replay import ReplayBackend
from collm.bank import load_bank
from collm.bank.evaluate import replay
from collm.datasets import load_dataset
from collm.errors import CollmError
from collm.prompts import Prompt
from collm.strategies import get_strategy
from collm.types import SamplingParams

HEADER = {"collm_bank": 1, "model": {"name": "toy", "sha256": "abc", "params": 1000}, "dataset": "gsm8k", "split": "test"}


def sample(a, gold, n):
    return {"a": a, "ok": a == gold, "n": n, "lp": -float(n)}


@pytest.fixture
def bank(tmp_path):
    """GSM8K test rows 0-5 with the real gold answers and made-up samples."""
    rng = np.random.default_rng(0)
    lines = [json.dumps(HEADER)]
    for p in load_dataset("gsm8k", "test", 0, 6):
        gold = float(p.gold)
        answers = [gold if rng.random() < 0.4 else float(rng.integers(1, 4)) for _ in range(8)]
        answers[0] = None if p.id == 2 else answers[0]
        lines.append(json.dumps({"i": p.id, "gold": gold, "prompt_tokens": 90 + p.id, "q_tokens": 2,
                                 "q_entropy": [0.5, 1.5], "q_nll": [2.0, 3.0], "greedy": sample(gold, gold, 7),
                                 "samples": [sample(a, gold, 10 + j) for j, a in enumerate(answers)]}))
    path = tmp_path / "toy.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return load_bank(path)


def test_majority_on_replay_matches_eval(bank):
    task = get_task("gsm8k")
    problems = load_dataset("gsm8k", "test", 0, 6)
    for seed in (0, 1, 2):
        for k in (1, 3, 8):
            be = ReplayBackend(bank, seed=seed)
            answers = get_strategy("majority").run(be, [Prompt(p.question, id=p.id) for p in problems], k, task, params=SamplingParams(top_k=0, max_tokens=512))
            live = [task.grade(a.answer, p.gold) for a, p in zip(answers, problems)]
            cor, _ = replay(bank, [k], [seed])
            assert live == cor[0, :, 0].tolist()


def test_draw_order_and_beyond_k(bank):
    be = ReplayBackend(bank, seed=5)
    order = np.random.default_rng([5, 1]).permutation(8)
    got = [c.tokens for c in be.generate([Prompt("q", id=1)], n=3, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=256, seed=None))[0].completions]
    got += [c.tokens for c in be.generate([Prompt("q", id=1)], n=5, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=256, seed=None))[0].completions]
    assert got == [10 + j for j in order]  # the next unseen samples, each once
    with pytest.raises(CollmError, match="holds 8 samples for problem 1; 8 were served and 1 more"):
        be.generate([Prompt("q", id=1)], n=1, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=256, seed=None))
    be.reset()
    assert len(be.generate([Prompt("q", id=1)], n=8, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=256, seed=None))[0].completions) == 8


def test_completion_fields_usage_and_greedy(bank):
    be = ReplayBackend(bank, seed=0)
    g = be.generate([Prompt("q", id=2)], n=8, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=256, seed=None))[0]
    assert sorted(c.text for c in g.completions if not c.text.startswith("\\boxed{")) == [""]  # the None answer
    assert all(c.finish_reason == "stop" and c.logprob == -c.tokens for c in g.completions)
    assert g.usage.prompt_tokens == 92 and g.usage.completion_tokens == sum(range(10, 18))
    assert g.usage.flops == 2 * 1000 * (92 + sum(range(10, 18)))
    gr = be.generate([Prompt("q", id=2)], n=1, params=SamplingParams(temperature=0, top_k=0, max_tokens=256, seed=None))[0]  # greedy: the bank's greedy decode
    assert gr.completions[0].tokens == 7 and gr.usage.prompt_tokens == 0  # the prompt was prefilled already
    task = get_task("gsm8k")
    assert task.grade(task.extract(gr.completions[0].text), load_dataset("gsm8k", "test", 2, 1)[0].gold)


def test_match_by_question_text_and_unknown(bank):
    p = load_dataset("gsm8k", "test", 4, 1)[0]
    be = ReplayBackend(bank)
    assert be.generate([Prompt(p.question)], n=1, params=SamplingParams(temperature=0, top_k=0, max_tokens=256, seed=None))[0].usage.prompt_tokens == 94
    with pytest.raises(CollmError, match="not in the bank"):
        be.generate([Prompt("What is 1 + 1?")], n=1, params=SamplingParams(temperature=0.8, top_k=0, max_tokens=256, seed=None))
    with pytest.raises(CollmError, match="problem 99 is not in the bank"):
        be.generate([Prompt("x", id=99)], n=1, params=SamplingParams(temperature=0.0, top_k=0, max_tokens=256, seed=None))


def test_score_prompt_is_the_bank_signal(bank):
    s = ReplayBackend(bank).score_prompt([Prompt("x", id=3)])[0]
    assert s.q_entropy == [0.5, 1.5] and s.q_nll == [2.0, 3.0]
    assert len(s.token_ids) == 93 and s.usage.flops == 2 * 1000 * 93
