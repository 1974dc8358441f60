"""The arithmetic check: it finds slips in written equations, skips what it
cannot read, and feeds the group scorer when a bank carries texts."""

import json

import numpy as np
import pytest

from collm.allocation import BankView, get_policy, replay
from collm.allocation.aggregate import GroupScorer
from collm.allocation.state import TEXT_FEATURES
from collm.bank.format import Bank, BankProblem, BankSample, parse_problem, problem_to_dict
from collm.errors import CollmError
from collm.prompts import Prompt
from collm.types import Completion
from collm.verifiers import get_verifier
from collm.verifiers.arithmetic import check_arithmetic, evaluate


@pytest.mark.parametrize("text, wrong", [
    (r"\[ \text{Running boards} = \$500 - \$2,500 = \$250 \]", 1),  # from a real Qwen sample
    (r"\$7,500 + \$2,500 + \$250 + \$1500 = \$16,000", 1),
    (r"\( \frac{1}{3} \times 7,500 = 2,500 \)", 0),
    ("3 + 4 = 7 and 7 * 2 = 15", 1),
    ("- 7500 + 2500 = 10000", 0),  # a list bullet, not a minus
    ("50 * 20% = 10", 0),
    ("10 / 3 = 3.33", 0),  # rounding is fine
    (r"5^2 = 25, 12 \div 4 = 3, 6 \cdot 7 = 42", 0),
    ("(20 + 30) * 2 = 100 = 50 + 50", 0),
    ("(20 + 30) * 2 = 100 = 50 + 40", 1),
])
def test_slips_are_found_and_right_equations_pass(text, wrong):
    r = check_arithmetic(text)
    assert r.checked >= 1
    assert r.wrong == wrong, r.errors


@pytest.mark.parametrize("text", [
    "x = 5", "2(3+4) = 15", "3x + 2 = 12", "20% of 50 = 11", "```python\nx = 3 + 4 = 9\n```", "1. 3 + 4 = 8",
    "total = 12", r"10 / 3 \approx 3",
])
def test_what_it_cannot_read_is_skipped_not_failed(text):
    assert check_arithmetic(text).wrong == 0


def test_evaluate_takes_arithmetic_only():
    assert evaluate("(1 + 2) * 3 / 4 - -1") == pytest.approx(3.25)
    for bad in ("__import__('os')", "x + 1", "abs(-1)", "10 ** 10 ** 10", "1 / 0", "[1]", "'a' * 3"):
        assert evaluate(bad) is None


def test_verifier_scores_halve_per_slip_outcome_and_process():
    comps = [Completion("2 + 2 = 4\n\nso 4 * 3 = 12", 9, -1.0), Completion("2 + 2 = 5\n\nso 5 * 3 = 16", 9, -1.0),
             Completion("no equations at all", 4, -1.0)]
    prompts = [Prompt("q")] * 3
    assert get_verifier("arithmetic")(prompts, comps) == [1.0, 0.25, 1.0]
    steps = get_verifier("arithmetic", mode="process", aggregation="min")
    assert steps(prompts, comps) == [1.0, 0.5, 1.0]


def text_bank(P=40, K=8, seed=0, texts=True) -> Bank:
    """Each problem: gold 7; the right draws show clean arithmetic, the wrong
    ones a slip; wrong answers hold the majority in about half the problems,
    so only the texts tell them apart."""
    rng = np.random.default_rng(seed)
    probs = []
    for i in range(P):
        n_right = int(rng.integers(1, K // 2 + 1))
        def s(right):  # noqa: E306
            t = "3 + 4 = 7 so \\boxed{7}" if right else "3 + 4 = 9 so \\boxed{9}"
            return BankSample(7.0 if right else 9.0, right, 20, -5.0, None, t if texts else None)
        samples = [s(c < n_right) for c in range(K)]
        rng.shuffle(samples)
        probs.append(BankProblem(i, 7.0, 30, 20, [1.0] * 20, [1.0] * 20, s(False), samples))
    return Bank("<text bank>", probs, {"model": {"name": "toy", "params": 1000}, "sampling": {"max_tokens": 50}})


def test_bank_texts_round_trip_and_give_slips():
    b = text_bank(P=3)
    p = b.problems[0]
    back = parse_problem(json.loads(json.dumps(problem_to_dict(p))))
    assert [s.t for s in back.samples] == [s.t for s in p.samples]
    A = b.arrays()
    assert set(np.unique(A["slips"])) == {0, 1} and A["greedy_slips"].tolist() == [1, 1, 1]
    assert "slips" not in text_bank(P=3, texts=False).arrays()


def test_scorer_learns_from_the_arithmetic_check_and_beats_the_vote():
    view = BankView(text_bank())
    s = view.sampler(0)
    s.request(np.arange(s.P), 1, greedy=True)
    s.request(np.arange(s.P), view.K)
    sc = GroupScorer().fit([s], [2, 5, 9], None)
    assert set(TEXT_FEATURES) <= set(sc.features) and sc.needs_text
    assert GroupScorer.from_dict(json.loads(json.dumps(sc.to_dict()))).features == sc.features
    picked = [s.correct(j, sc.answer(s.draws[j], None)) for j in range(s.P)]
    assert np.mean(picked) == 1.0  # every problem has a clean right draw
    plain = GroupScorer().fit([BankView(text_bank(texts=False)).sampler(0)], [2], None)
    assert not plain.needs_text


def test_a_text_policy_is_refused_on_a_bank_without_texts():
    pol = get_policy("marginal", grid=[1, 2, 3, 5, 9], fit_seeds=1).fit(BankView(text_bank()), samples=4)
    assert pol.scorer.needs_text
    replay(pol, BankView(text_bank(seed=1)), seed=0)  # fine with texts
    with pytest.raises(CollmError, match="keep-text"):
        replay(pol, BankView(text_bank(seed=1, texts=False)), seed=0)


# ---- program answers: the sample's own Python, run in a sandbox (tests/test_program_sandbox.py) ----

from collm.answers.program import last_number, program_answer, python_blocks, run_program, sandbox_problem  # noqa: E402

needs_sandbox = pytest.mark.skipif(sandbox_problem() is not None, reason=str(sandbox_problem()))

FAKE_OUTPUT = "Let's compute.\n```python\nweekly = 20000 * 0.05\nprint(weekly * 4 * 12)\n```\n```output\n192000\n```\nSo \\boxed{192000}."


@needs_sandbox
def test_program_answer_runs_the_code_not_the_invented_output():
    assert python_blocks(FAKE_OUTPUT) == ["weekly = 20000 * 0.05\nprint(weekly * 4 * 12)\n"]
    assert program_answer(FAKE_OUTPUT) == "48000"
    two = "```python\nx = 3\n```\nthen\n```python\nprint(x * 2.5)\n```"
    assert program_answer(two) == "7.5"  # blocks run together, in order


@needs_sandbox
@pytest.mark.parametrize("text", ["no code here, \\boxed{3}", "```python\nprint('done')\n```",
                                  "```python\nraise SystemExit(1)\n```", "```python\nprint(1/0)\n```",
                                  "```python\nwhile True:\n    pass\n```", "```python\nx = [0] * 10**10\n```"])
def test_program_answer_is_none_when_there_is_nothing_to_read(text):
    assert program_answer(text) is None


@needs_sandbox
def test_programs_are_contained():
    assert run_program("while True:\n    pass").ok is False  # CPU limit
    r = run_program("import os\nprint(os.getcwd(), os.listdir('.'), sorted(os.environ))")
    # an empty working directory, and no environment but the locale Python sets itself
    assert r.ok and r.stdout.startswith("/tmp [] [") and "HOME" not in r.stdout and "PATH" not in r.stdout
    big = run_program("open('f', 'w').write('x' * (8 << 20))")
    assert not big.ok  # file size limit


def test_last_number_is_canonical():
    assert last_number("total: 1,234.0 dollars") == "1234"
    assert last_number("x = -2.50") == "-2.5"
    assert last_number("nothing") is None


@needs_sandbox
def test_a_bank_is_answered_again_from_its_texts():
    from collm.answers import get_task

    b = text_bank(P=2, K=2)
    b.problems[0].samples[0] = BankSample(9.0, False, 20, -5.0, None, FAKE_OUTPUT.replace("20000 * 0.05", "7 / 48"))
    again = b.reextract(get_task("gsm8k+program"))
    assert again.problems[0].samples[0].a == "7" and again.problems[0].samples[0].ok
    assert again.problems[1].samples == [s for s in again.problems[1].samples if s.a in ("7", "9")]
    with pytest.raises(CollmError, match="keep-text"):
        text_bank(P=2, texts=False).reextract(get_task("gsm8k+program"))


@needs_sandbox
def test_a_policy_fitted_on_program_answers_needs_them_everywhere(tmp_path):
    from collm.allocation.live import answer_with_policy
    from collm.answers import get_task

    prog = text_bank().with_program_answers()
    assert prog.task_name == "gsm8k+program" and prog.with_program_answers() is prog
    pol = get_policy("uniform").fit(BankView(prog), samples=3)
    assert pol.target["answers"] == "program"
    replay(pol, BankView(text_bank(seed=2).with_program_answers()), seed=0)
    with pytest.raises(CollmError, match="execute-code"):
        replay(pol, BankView(text_bank(seed=2)), seed=0)
    with pytest.raises(CollmError, match="execute-code"):  # refused before any generation
        answer_with_policy(object(), ["q"], get_task("gsm8k"), pol)
    assert "answers" not in get_policy("uniform").fit(BankView(text_bank()), samples=3).target
