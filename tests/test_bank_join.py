"""Joining banks of the same rows drawn with different seeds (collm bank join)."""

import json

import pytest
from test_bank_build import Scripted, golds, header

from collm.bank import load_bank
from collm.bank.build import build_bank
from collm.bank.join import join_banks
from collm.cli import main
from collm.datasets import load_dataset


@pytest.fixture
def two(tmp_path):
    probs = load_dataset("gsm8k", "test", 10, 5)
    paths = []
    for seed, rows in ((0, probs), (1, probs[1:])):
        be = Scripted(golds(probs))
        path = tmp_path / f"seed{seed}.jsonl"
        build_bank(be, rows, path, header(be, seed=seed, keep_text=True), batch_size=2, progress=False)
        paths.append(path)
    return paths


def test_join_adds_samples_keeps_common_rows_and_records_seeds(two, tmp_path, capsys):
    out = tmp_path / "joined.jsonl"
    assert main(["bank", "join", str(two[0]), str(two[1]), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "1 row(s) not in every bank were left out: [10]" in err
    a, b, j = load_bank(two[0]), load_bank(two[1]), load_bank(out)
    assert [p.i for p in j.problems] == [11, 12, 13, 14]
    assert j.k == 8 and j.header["sampling"]["k"] == 8 and j.header["sampling"]["seed"] == [0, 1]
    pa, pb = {p.i: p for p in a.problems}, {p.i: p for p in b.problems}
    for p in j.problems:
        assert p.samples == pa[p.i].samples + pb[p.i].samples
        assert p.greedy == pa[p.i].greedy and p.q_entropy == pa[p.i].q_entropy
    assert j.has_texts


def test_same_seed_or_other_sampling_is_refused(two, tmp_path):
    a, b = load_bank(two[0]), load_bank(two[1])
    b.header["sampling"]["seed"] = 0
    with pytest.raises(Exception, match="both drawn with seed 0"):
        join_banks([a, b])
    b.header["sampling"]["seed"] = 1
    b.header["sampling"]["temperature"] = 1.0
    with pytest.raises(Exception, match=r"differ in sampling.temperature \(0.8 vs 1.0\)"):
        join_banks([a, b])


def test_join_cli_bad_input_exits_2(two, tmp_path, capsys):
    out = tmp_path / "j.jsonl"
    out.write_text("")
    assert main(["bank", "join", str(two[0]), str(two[1]), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["bank", "join", str(two[0]), "--out", str(tmp_path / "k.jsonl")]) == 2
    assert "at least two banks" in capsys.readouterr().err
    # joining a joined bank with one of its parts repeats a seed
    good = tmp_path / "g.jsonl"
    assert main(["bank", "join", str(two[0]), str(two[1]), "--out", str(good)]) == 0
    assert main(["bank", "join", str(good), str(two[1]), "--out", str(tmp_path / "h.jsonl")]) == 2
    assert "seed 1" in capsys.readouterr().err
    assert json.loads(good.read_text().splitlines()[0])["joined_from"] == ["seed0.jsonl", "seed1.jsonl"]
