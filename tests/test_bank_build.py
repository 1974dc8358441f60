"""Building a bank: resume after a crash with nothing lost or duplicated.

The resume logic is pure file handling, checked here with a deterministic
stand-in engine; test_bank_build_model.py does the same with the real
SmolLM2 in a subprocess killed with SIGKILL."""

import fcntl
import json

import pytest
from conftest import FakeBackend

from collm.bank import load_bank
from collm.bank.build import build_bank, make_header
from collm.datasets import load_dataset
from collm.errors import CollmError
from collm.types import Completion, PromptScore, SamplingParams, Usage


class Scripted(FakeBackend):
    """Answers problem i with gold on even samples, 0 on odd ones, the last of
    several cut at max_tokens; can crash after a number of generate calls."""

    name = "scripted"
    params = 100
    model_id = "sha-scripted"

    def __init__(self, golds, crash_after=None):
        super().__init__(crash_after=crash_after)
        self.golds = golds

    def replies(self, p, n, params):
        comps = [Completion(f"so \\boxed{{{self.golds[p.id] if j % 2 == 0 else 0}}}", 5 + j, -1.0 * j) for j in range(n)]
        if n > 1:
            comps[-1] = Completion("and so on and", params.max_tokens, -9.0, finish_reason="length")
        return comps

    def prompt_tokens(self, p):
        return 20

    def score_prompt(self, prompts):
        return [PromptScore(list(range(20)), [None] + [1.0] * 19, [None] + [-2.0] * 19, (10, 14), Usage(20))
                for _ in prompts]


def header(backend, k=4, keep_text=False, **kw):
    params = SamplingParams(**{"temperature": 0.8, "top_p": 1.0, "max_tokens": 30, "seed": 0, **kw})
    return make_header(backend, "scripted", "gsm8k", "test", "gsm8k", k=k, params=params, keep_text=keep_text)


@pytest.fixture
def problems():
    return load_dataset("gsm8k", "test", 10, 5)


def golds(problems):
    return {p.id: p.gold for p in problems}


def test_build_writes_graded_lines(tmp_path, problems):
    be = Scripted(golds(problems))
    out = tmp_path / "b.jsonl"
    res = build_bank(be, problems, out, header(be), batch_size=2, progress=False)
    assert res == {"path": str(out), "done": 5, "skipped": 0, "total": 5}
    bank = load_bank(out)
    assert [p.i for p in bank.problems] == [10, 11, 12, 13, 14]
    assert bank.model == {"name": "scripted", "sha256": "sha-scripted", "model_id": "sha-scripted", "params": 100,
                          "engine": "scripted"}
    assert bank.header["sampling"]["k"] == 4
    p = bank.problems[0]
    assert [s.ok for s in p.samples] == [True, False, True, False]
    assert p.samples[3].a is None and p.samples[3].f == "length"  # a cut sample has no answer
    assert p.greedy.ok and p.prompt_tokens == 20 and p.q_tokens == 4 and p.q_entropy == [1.0] * 4
    assert p.q_nll == [2.0] * 4


def test_resume_after_crash_and_cut_line(tmp_path, problems):
    out = tmp_path / "b.jsonl"
    be = Scripted(golds(problems), crash_after=2)  # batch 1: samples + greedy, then crash
    with pytest.raises(RuntimeError):
        build_bank(be, problems, out, header(be), batch_size=2, progress=False)
    assert len(load_bank(out)) == 2
    with open(out, "ab") as f:  # a kill -9 in the middle of writing the next line
        f.write(b'{"i": 12, "gold": "1", "prom')
    be = Scripted(golds(problems))
    res = build_bank(be, problems, out, header(be), batch_size=2, progress=False)
    assert res["skipped"] == 2 and res["done"] == 3
    assert {i for i, _, _ in be.asked} == {12, 13, 14}  # nothing finished is asked again
    rows = [p.i for p in load_bank(out).problems]
    assert sorted(rows) == [10, 11, 12, 13, 14] and len(rows) == len(set(rows))
    # run again: nothing to do
    be = Scripted(golds(problems))
    assert build_bank(be, problems, out, header(be), progress=False)["done"] == 0 and len(be.calls) == 0


def test_resume_with_other_settings_is_refused(tmp_path, problems):
    out = tmp_path / "b.jsonl"
    be = Scripted(golds(problems))
    build_bank(be, problems[:1], out, header(be), progress=False)
    with pytest.raises(CollmError, match="other settings.*sampling.k"):
        build_bank(be, problems, out, header(be, k=8), progress=False)
    with pytest.raises(CollmError, match="other settings.*sampling.top_k"):
        build_bank(be, problems, out, header(be, top_k=0), progress=False)
    other = tmp_path / "plain.jsonl"
    other.write_text(json.dumps({"i": 0}) + "\n")
    with pytest.raises(CollmError, match="not a bank built by collm"):
        build_bank(be, problems, other, header(be), progress=False)


def test_a_second_builder_is_locked_out(tmp_path, problems):
    out = tmp_path / "b.jsonl"
    be = Scripted(golds(problems))
    with open(out, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        with pytest.raises(CollmError, match="another process"):
            build_bank(be, problems, out, header(be), progress=False)


def test_samples_are_drawn_with_the_headers_top_k(tmp_path, problems):
    be = Scripted(golds(problems))
    build_bank(be, problems[:2], tmp_path / "b.jsonl", header(be, top_k=7), progress=False)
    assert load_bank(tmp_path / "b.jsonl").header["sampling"]["top_k"] == 7
    assert 7 in [c.params.top_k for c in be.calls]  # the k samples; the greedy pass needs none


def test_a_bank_from_before_top_k_resumes_as_whole_vocabulary(tmp_path, problems):
    out = tmp_path / "b.jsonl"
    be = Scripted(golds(problems))
    h = header(be)
    del h["sampling"]["top_k"]  # written by a collm that sampled from the whole vocabulary
    build_bank(be, problems[:1], out, h, progress=False)
    with pytest.raises(CollmError, match="sampling.top_k"):
        build_bank(be, problems[:2], out, header(be), progress=False)
    build_bank(be, problems[:2], out, header(be, top_k=0), progress=False)
    assert len(load_bank(out)) == 2


@pytest.mark.parametrize("argv", [
    ["bank", "build", "--model", "smollm2-135m", "--dataset", "gsm8k", "--k", "2", "--top-k", "-1", "--out", "x.jsonl"],
    ["ask", "What is 2 + 2?", "--top-k", "-1"],
])
def test_negative_top_k_is_refused_before_any_model_loads(argv, capsys):
    from collm.cli import main

    assert main(argv) == 2
    assert "--top-k must be >= 0" in capsys.readouterr().err
