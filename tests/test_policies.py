"""Policies: JSON round trips, refusals, the CLI, the live path on a replay
backend, and (on the shared bank, when present) cross-validated quality."""

import json

import numpy as np
import pytest
from allocation_helpers import random_bank
from conftest import SHARED_BANK as SHARED

from collm.allocation import BankView, get_policy, replay
from collm.allocation.evaluate import cross_validate, policy_report
from collm.cli import main
from collm.errors import CollmError
from collm.policies import load_policy
from collm.types import SamplingParams

KINDS = ["uniform", "early-stop", "schedule", "marginal"]


@pytest.mark.parametrize("kind", KINDS)
def test_json_round_trip_gives_the_same_allocation(kind, tmp_path):
    view = BankView(random_bank(3, P=8))
    pol = get_policy(kind).fit(view, samples=3)
    pol.save(tmp_path / "p.json")
    back = load_policy(tmp_path / "p.json", model={"name": "toy"})
    assert back.kind == kind and back.params == pol.params
    a, b = replay(pol, view, 7), replay(back, view, 7)
    assert np.array_equal(a["samples"], b["samples"]) and np.array_equal(a["correct"], b["correct"])


def test_a_policy_for_another_model_or_version_is_refused(tmp_path):
    view = BankView(random_bank(0))
    pol = get_policy("early-stop").fit(view)
    pol.model = {"name": "toy", "sha256": "a" * 64}
    pol.save(tmp_path / "p.json")
    with pytest.raises(CollmError, match="calibrated for toy"):
        load_policy(tmp_path / "p.json", model={"name": "toy", "sha256": "b" * 64})
    with pytest.raises(CollmError, match="calibrated for"):
        load_policy(tmp_path / "p.json", model={"name": "other"})
    d = json.loads((tmp_path / "p.json").read_text())
    d["collm_version"] = "9.0.0"
    (tmp_path / "old.json").write_text(json.dumps(d))
    with pytest.raises(CollmError, match="incompatible"):
        load_policy(tmp_path / "old.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(CollmError, match="not a collm policy"):
        load_policy(tmp_path / "bad.json")


def test_policies_spend_about_their_calibrated_budget():
    view = BankView(random_bank(4, P=30, K=12))
    for kind in ("uniform", "marginal", "schedule"):
        pol = get_policy(kind).fit(view, samples=4)
        spent = np.mean([replay(pol, view, s)["samples"].mean() for s in (101, 102)])
        assert 2 <= spent <= 4 * 1.1, (kind, spent)  # calibration aims at the budget; caps are Budget's job


def test_cli_refuses_bad_budgets_with_the_minimum(tmp_path, capsys):
    bank = tmp_path / "b.jsonl"
    from collm.bank.format import problem_to_dict

    rb = random_bank(0)
    bank.write_text("".join(json.dumps(problem_to_dict(p)) + "\n" for p in rb.problems))
    args = ["calibrate", "--bank", str(bank), "--policy", "marginal", "--out", str(tmp_path / "p.json"), "--model-params", "1000"]
    assert main(args + ["--budget", "0"]) == 2
    assert "minimum is 1" in capsys.readouterr().err
    assert main(args + ["--flops", "10"]) == 2
    assert "minimum here is" in capsys.readouterr().err
    assert main(args[:4] + ["nope", *args[5:], "--budget", "2"]) == 2
    assert "unknown policy" in capsys.readouterr().err
    assert main(args + ["--budget", "2", "--seeds", "1"]) == 0
    pol = load_policy(tmp_path / "p.json")
    assert pol.cv["folds"] == 2 and 0 <= pol.cv["accuracy"] <= 1


def test_live_path_on_a_replay_backend_matches_the_bank_replay():
    from collm.allocation.live import answer_with_policy
    from collm.answers import get_task
    from collm.backends.replay import ReplayBackend
    from collm.prompts import Prompt

    bank = random_bank(5, P=8, K=8)
    view = BankView(bank)
    pol = get_policy("marginal", fit_seeds=2, lam=0.0).fit(view)
    be = ReplayBackend(bank, seed=3, params=1000)
    by_row = {p.i: p for p in bank.problems}
    be.count_prompt_tokens = lambda p: (by_row[p.id].prompt_tokens, by_row[p.id].q_tokens)
    answers = answer_with_policy(be, [Prompt("q", id=p.i) for p in bank.problems], get_task("number"), pol,
                                 params=SamplingParams(max_tokens=50, seed=3))
    r = replay(pol, view, 3)
    assert [a.n for a in answers] == list(r["samples"].astype(int))
    for a, p, s_draws in zip(answers, bank.problems, r["sampler"].draws):
        assert a.n == len(a.completions) and a.usage.flops > 0
        assert sum(a.votes.values()) <= a.n
        assert "difficulty" in a.extra and a.extra["policy"] == "marginal"


@pytest.mark.skipif(not SHARED.is_file(), reason="the shared bank is not here")
def test_marginal_beats_uniform_at_equal_compute_on_the_shared_bank(tmp_path):
    from collm.allocation.evaluate import compute_ratio, uniform_points
    from collm.bank import load_bank

    view = BankView(load_bank(SHARED))
    cv = cross_validate(view, "marginal", samples=8, seeds=(0, 1))
    assert cv["samples"] <= 8.0 + 1e-9
    r = compute_ratio(uniform_points(view, (0, 1)), cv["accuracy"], cv["flops"])
    assert r["ratio"] > 1.2, r


@pytest.mark.model
def test_shipped_policy_answers_live_with_smollm2_within_budget():
    from collm.allocation.live import answer_with_policy
    from collm.answers import get_task
    from collm.backends import load_backend
    from collm.policies import policy_for, shipped_policies

    be = load_backend("smollm2-135m", "torch")
    pol = policy_for(be)
    assert pol.kind == "early-stop" and pol.model["name"] == "smollm2-135m"  # the shipped default
    qwen = [p for p in shipped_policies() if "qwen" in p.name][0]
    with pytest.raises(CollmError, match="calibrated for"):
        policy_for(be, str(qwen))
    qs = ["What is 2 + 3?", "Tom has 4 apples and eats one. How many are left?"]
    answers = answer_with_policy(be, qs, get_task("gsm8k"), pol, budget=3, params=SamplingParams(max_tokens=24, seed=1))
    assert len(answers) == 2
    assert sum(a.n for a in answers) <= 6 and all(1 <= a.n <= 8 for a in answers)
    for a in answers:
        assert a.n == len(a.completions) and a.usage.flops > 0
        assert a.extra["policy"] == "early-stop" and 0 <= a.extra["difficulty"] <= 1


def test_policy_report_on_another_bank_of_the_same_model(tmp_path):
    from collm.bank.format import problem_to_dict

    pilot, other = random_bank(6, P=12, K=8), random_bank(7, P=10, K=8)
    pol = get_policy("marginal", fit_seeds=2).fit(BankView(pilot), samples=3)
    pol.save(tmp_path / "p.json")
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps({"collm_bank": 1, **other.header}) + "\n"
                    + "".join(json.dumps(problem_to_dict(p)) + "\n" for p in other.problems))
    from collm.bank import load_bank

    rep = policy_report(load_bank(path), tmp_path / "p.json", seeds=2)
    for key in ("accuracy", "samples", "flops", "estimator_flops", "ratio_to_uniform"):
        assert key in rep and key in rep["policy"] or key == "ratio_to_uniform"
    assert 1 <= rep["samples"] <= 9 and rep["flops"] > 0 and rep["in_sample"] is False
    other.header["model"] = {"name": "another", "params": 1000}
    path.write_text(json.dumps({"collm_bank": 1, **other.header}) + "\n"
                    + "".join(json.dumps(problem_to_dict(p)) + "\n" for p in other.problems))
    with pytest.raises(CollmError, match="calibrated for toy"):
        policy_report(load_bank(path), tmp_path / "p.json", seeds=2)


def test_group_scorer_round_trips_and_refuses_other_features():
    from collm.allocation.aggregate import GroupScorer

    view = BankView(random_bank(8, P=12, K=8))
    s = view.sampler(0)
    s.request(np.arange(s.P), 1, greedy=True)
    s.request(np.arange(s.P), view.K)
    sc = GroupScorer().fit([s], [2, 4, 9], None)
    back = GroupScorer.from_dict(json.loads(json.dumps(sc.to_dict())))
    for ds in s.draws:
        assert np.allclose(sc.scores(ds, None)[1], back.scores(ds, None)[1], atol=1e-4)
        assert sc.answer(ds, None) == back.answer(ds, None) or not len(sc.scores(ds, None)[0])
    old = {**sc.to_dict(), "features": ["bias", "share"]}
    with pytest.raises(CollmError, match="calibrate it again"):
        GroupScorer.from_dict(old)


def test_cross_validate_per_problem_figures_average_to_its_summary():
    view = BankView(random_bank(3, P=12, K=8))
    cv = cross_validate(view, "early-stop", samples=4, seeds=(0, 1), splits=(0, 1), per_problem=True)
    pp = cv["per_problem"]
    assert len(pp["correct"]) == len(pp["flops"]) == 12
    # every problem is held out once per split, so the plain mean is the summary
    assert np.mean(pp["correct"]) == pytest.approx(cv["accuracy"])
    assert np.mean(pp["flops"]) == pytest.approx(cv["flops"])


def test_ratio_interval_is_exact_for_a_policy_at_half_the_cost_and_counts_misses():
    from intervals import ratio_interval

    rng = np.random.default_rng(0)
    uc = rng.random((30, 1)) < 0.5
    uf = rng.uniform(1, 3, (30, 1))
    half = [{"per_problem": {"correct": uc[:, 0].astype(float).tolist(), "flops": (uf[:, 0] / 2).tolist()}}]
    r = ratio_interval(half, uc.astype(float), uf, 0, n_boot=200)
    assert r["ratio"] == pytest.approx(2.0) and r["lo"] == pytest.approx(2.0) and r["hi"] == pytest.approx(2.0)
    assert r["reached"] == 1.0
    assert r["at_target"] == 0.0 and ratio_interval(half, uc.astype(float), uf, 0, n_boot=50, target=2)["at_target"] == 1.0
    worse = [{"per_problem": {"correct": np.zeros(30).tolist(), "flops": (uf[:, 0] / 2).tolist()}}]
    r = ratio_interval(worse, uc.astype(float), uf, 0, n_boot=200)
    assert r["ratio"] == 0.0 and r["reached"] < 0.01


def test_ratio_interval_narrows_when_projected_onto_more_problems():
    from intervals import ratio_interval

    rng = np.random.default_rng(1)
    uc = (rng.random((60, 1)) < 0.5).astype(float)
    uf = np.full((60, 1), 4.0)
    pts = [{"per_problem": {"correct": (rng.random(60) < q).astype(float).tolist(), "flops": np.full(60, f).tolist()}}
           for q, f in ((0.3, 1.0), (0.6, 2.0))]  # a noisy policy: its ratio varies between resamples
    own = ratio_interval(pts, uc, uf, 0, n_boot=300)
    big = ratio_interval(pts, uc, uf, 0, n_boot=300, size=600)
    assert own["size"] == 60 and big["size"] == 600 and big["ratio"] == own["ratio"]
    assert big["hi"] - big["lo"] < (own["hi"] - own["lo"]) / 2


def test_program_tasks_prefer_a_policy_calibrated_on_program_answers(tmp_path, monkeypatch):
    from collm import policies as live

    model = {"name": "toy", "sha256": "ab" * 32, "params": 1000}
    files = []
    for name, target in (("toy.json", {"samples": 4}), ("toy.program.json", {"samples": 4, "answers": "program"})):
        f = tmp_path / name
        f.write_text(json.dumps({"collm_policy": 1, "kind": "uniform", "model": model, "params": {"n": 4},
                                 "state": {}, "target": target}))
        files.append(f)
    monkeypatch.setattr(live, "shipped_policies", lambda: sorted(files))
    assert live.default_policy_path(model) == files[0]
    assert live.default_policy_path(model, answers="program") == files[1]
    monkeypatch.setattr(live, "shipped_policies", lambda: [files[1]])
    assert live.default_policy_path(model) is None  # never a program policy for plain answers
    monkeypatch.setattr(live, "shipped_policies", lambda: [files[0]])
    assert live.default_policy_path(model, answers="program") == files[0]  # falls back to the plain one


def test_a_replay_capped_below_the_banks_max_tokens_stops_long_samples_there():
    from allocation_helpers import MAX_TOKENS

    bank = random_bank(5, P=8, K=6)
    full, capped = BankView(bank).sampler(0), BankView(bank, max_tokens=20).sampler(0)
    for s in (full, capped):
        s.request(np.arange(8), 1, greedy=True)
        s.request(np.arange(8), 6)
    assert full.max_tokens == MAX_TOKENS
    n = 0
    for a, b in zip(full.draws, capped.draws):
        for d, e in zip(a, b):
            if d.tokens < 20:  # a shorter sample is the same sample under the cap
                assert e == d
            else:  # a longer one stops at the cap, pays it, and never votes
                assert e.tokens == 20 and e.cut and (e.key is None or d.tokens == 20)
                n += 1
    assert n > 0
    assert capped.flops.sum() < full.flops.sum()


def test_calibrate_records_paces_and_a_budget_picks_its_own(tmp_path, capsys):
    from collm.bank.format import problem_to_dict

    bank = tmp_path / "bank.jsonl"
    rb = random_bank(0)
    bank.write_text("".join(json.dumps(problem_to_dict(p)) + "\n" for p in rb.problems))
    out = tmp_path / "p.json"
    args = ["calibrate", "--bank", str(bank), "--policy", "marginal", "--out", str(out), "--model-params", "1000",
            "--budget", "3", "--seeds", "1"]
    assert main(args + ["--paces", "2,x"]) == 2
    assert "--paces takes budgets" in capsys.readouterr().err
    assert main(args + ["--paces", "1.5,5"]) == 0
    pol = load_policy(out)
    paces = pol.state["paces"]
    assert [p["target_samples"] for p in paces] == [1.5, 3.0, 5.0]  # cheapest first, the main budget among them
    assert [p["flops"] for p in paces] == sorted(p["flops"] for p in paces)
    assert all("lam_rounds" in p["learned"] for p in paces)  # step "auto"'s price where rounds bind, per budget
    lams = [p["learned"]["lam"] for p in paces]
    assert lams[0] > lams[1] > lams[2]  # a smaller budget: a higher price of a sample
    assert pol.paced(samples=3.5).value("lam") == lams[1] and pol.paced(samples=9).value("lam") == lams[2]


def test_marginal_fits_a_price_for_rounds_and_bank_replays_step_as_before():
    view = BankView(random_bank(0, P=12, K=8))
    auto = get_policy("marginal", fit_seeds=2).fit(view, samples=3)
    nxt = get_policy("marginal", fit_seeds=2, step="next").fit(view, samples=3)
    assert "lam_rounds" in auto.state and "lam_rounds" not in nxt.state
    assert auto.state["lam"] == nxt.state["lam"]  # the same bisection for the mode a replay runs in
    a, b = replay(auto, view, 0), replay(nxt, view, 0)
    assert (a["samples"] == b["samples"]).all() and (a["correct"] == b["correct"]).all()


def _rounds(pol, view, bound: bool):
    """A replay whose sampler says rounds bind (or not): mean requests per prompt, generations, accuracy."""
    s = view.sampler(0)
    s.rounds_bound = lambda: bound
    asked = np.zeros(s.P)
    request = s.request

    def counted(idx, ks, greedy=False):
        np.add.at(asked, np.atleast_1d(np.asarray(idx, np.int64)), 1)
        return request(idx, ks, greedy)

    s.request = counted
    pol.run(s)
    return asked.mean(), s.gens.mean(), np.mean([s.correct(j, pol.answer(s.draws[j])) for j in range(s.P)])


def test_where_rounds_bind_the_shipped_policy_takes_fewer_larger_steps_at_its_budget():
    from collm.allocation.base import Policy
    from collm.bank import load_bank

    from conftest import ROOT

    pol = Policy.from_file(ROOT / "collm" / "policies" / "qwen2.5-coder-0.5b.json").paced(samples=4)
    view = BankView(load_bank(SHARED)).subset(range(320))
    (r_next, g_next, acc_next), (r_far, g_far, acc_far) = _rounds(pol, view, False), _rounds(pol, view, True)
    assert r_far < 0.65 * r_next, (r_far, r_next)  # rounds a prompt waits on, the greedy pass among them
    assert abs(g_far - g_next) < 0.6 and abs(g_far - 4) < 0.6  # lam_rounds keeps the pace's budget
    assert acc_far > acc_next - 0.03
