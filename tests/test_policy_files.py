"""Policy files are validated when read: a wrong type, a count that is not a
whole number >= 1, a malformed section or a learned state that cannot run is
a one-line CollmError naming the field, at load time, and every command that
reads policies exits 2 on it (the server refuses to start)."""

from __future__ import annotations

import json

import pytest
from allocation_helpers import random_bank

from collm.allocation import BankView, get_policy
from collm.cli import main
from collm.errors import CollmError
from collm.policies import load_policy


def saved(tmp_path, kind="uniform", **fit):
    view = BankView(random_bank(2, P=8))
    pol = get_policy(kind, **({"fit_seeds": 1} if kind == "marginal" else {})).fit(view, **fit)
    path = tmp_path / f"{kind}.json"
    pol.save(path)
    return path, json.loads(path.read_text())


def write(tmp_path, d, name="bad.json"):
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


@pytest.mark.parametrize("change,needle", [
    (lambda d: d["params"].update(n="four"), "params.n"),
    (lambda d: d["params"].update(n=-3), "params.n"),
    (lambda d: d["params"].update(n=2.7), "params.n"),
    (lambda d: d["params"].update(vote_cut="yes"), "params.vote_cut"),
    (lambda d: d.update(params=[1, 2]), "params"),
    (lambda d: d.update(target="all of it"), "target"),
    (lambda d: d.update(model="qwen"), "model"),
    (lambda d: d["model"].update(params="big"), "model.params"),
    (lambda d: d["params"].update(bogus=1), "bogus"),
    (lambda d: d["state"].update(n=0), "state"),
])
def test_a_malformed_uniform_policy_is_refused_naming_the_field(tmp_path, change, needle):
    _, d = saved(tmp_path, samples=3)
    change(d)
    with pytest.raises(CollmError, match=needle.replace(".", r"\.")):
        load_policy(write(tmp_path, d))


@pytest.mark.parametrize("change,needle", [
    (lambda d: d["state"].update(W=[[0.0]]), "W has shape"),
    (lambda d: d["state"].pop("W"), "never fitted"),
    (lambda d: d["state"].update(grid=[4, 2]), "shape|grid"),
    (lambda d: d["params"].update(lam="cheap"), "params.lam"),
    (lambda d: d["params"].update(aggregate="magic"), "params.aggregate"),
    (lambda d: d["state"]["scorer"].update(features=["nope"]), "other features"),
])
def test_a_malformed_marginal_state_is_refused(tmp_path, change, needle):
    _, d = saved(tmp_path, "marginal")
    change(d)
    with pytest.raises(CollmError, match=needle):
        load_policy(write(tmp_path, d))


def test_the_other_kinds_are_validated_too(tmp_path):
    with pytest.raises(CollmError, match="budgets"):
        load_policy(write(tmp_path, {"kind": "thresholds", "thresholds": [1.0], "budgets": [0, 4]}))
    with pytest.raises(CollmError, match="increasing"):
        load_policy(write(tmp_path, {"kind": "thresholds", "thresholds": [2.0, 1.0], "budgets": [1, 2, 3]}))
    bad = {"collm_strategy_policy": 1, "table": {"1": {"4": {"strategy": 5, "settings": {}}}}}
    with pytest.raises(CollmError, match="strategy"):
        load_policy(write(tmp_path, bad))
    bad["table"] = {"one": {"4": {"strategy": "majority", "settings": {}}}}
    with pytest.raises(CollmError, match="whole number"):
        load_policy(write(tmp_path, bad))
    with pytest.raises(CollmError, match="not a collm policy"):
        load_policy(write(tmp_path, {"kind": "mystery"}))
    with pytest.raises(CollmError, match="not valid JSON"):
        (tmp_path / "cut.json").write_text('{"collm_policy": 1, "kind"')
        load_policy(tmp_path / "cut.json")


def test_hyperparameters_stay_as_given_and_learned_values_go_to_state(tmp_path):
    view = BankView(random_bank(3, P=8))
    pol = get_policy("early-stop", n_min=2)
    given = pol.get_params()
    pol.fit(view, samples=3)
    assert pol.get_params() == given  # fit wrote nothing back
    assert set(pol.state) >= {"conf", "n_max"} and pol.value("conf") == pol.state["conf"]
    u = get_policy("uniform", n=6).fit(view, samples=2)
    assert u.params["n"] == 6 and u.state["n"] == 2 and u.value("n") == 2


def test_commands_exit_2_on_a_bad_policy_and_serve_refuses_to_start(tmp_path, capsys):
    bank = tmp_path / "b.jsonl"
    from collm.bank.format import problem_to_dict

    rb = random_bank(0)
    bank.write_text(json.dumps({"collm_bank": 1, **rb.header}) + "\n"
                    + "".join(json.dumps(problem_to_dict(p)) + "\n" for p in rb.problems))
    path, d = saved(tmp_path, samples=3)
    d["params"]["n"] = "four"
    bad = write(tmp_path, d)
    assert main(["eval", "--bank", str(bank), "--policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "params.n" in err and "Traceback" not in err
    assert main(["serve", "--upstream", "http://127.0.0.1:9/v1", "--upstream-params", "1000",
                 "--policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "params.n" in err and "Traceback" not in err
