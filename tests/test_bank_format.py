"""Bank files: headers, sidecars, the built-in header of the shared bank, and
bad input named by file and line."""

import json
from pathlib import Path

import pytest

from collm.bank import load_bank
from collm.bank.format import merge_banks
from collm.errors import CollmError

SHARED = Path(__file__).resolve().parents[2] / "shared/banks/gsm8k_test_qwen25coder05b_k32_part1.jsonl"

LINE = {"i": 0, "gold": 3.0, "prompt_tokens": 50, "q_tokens": 2, "q_entropy": [1.0, 2.0], "q_nll": [0.5, 0.5],
        "greedy": {"a": 3.0, "ok": True, "n": 5, "lp": -1.0},
        "samples": [{"a": 3.0, "ok": True, "n": 5, "lp": -1.0}, {"a": None, "ok": False, "n": 9, "lp": -2.0, "f": "length"}]}


def header(name="m", sha="s1", dataset="gsm8k"):
    return {"collm_bank": 1, "model": {"name": name, "sha256": sha, "params": 10}, "dataset": dataset, "split": "test"}


def write(path, *objs, raw_tail=""):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs) + raw_tail)
    return path


def test_header_line_and_fields(tmp_path):
    b = load_bank(write(tmp_path / "b.jsonl", header(), LINE, {**LINE, "i": 1, "extra_field": 7}))
    assert len(b) == 2 and b.k == 2 and b.params == 10 and b.model_key == "s1"
    assert b.problems[0].samples[1].f == "length"
    assert b.problems[1].extra == {"extra_field": 7}
    A = b.arrays()
    assert A["ans"][0].tolist() == [0, -1] and A["greedy_ans"][0] == 0


def test_sidecar_header(tmp_path):
    p = write(tmp_path / "b.jsonl", LINE)
    (tmp_path / "b.jsonl.meta.json").write_text(json.dumps(header(name="side")))
    assert load_bank(p).model["name"] == "side"


@pytest.mark.skipif(not SHARED.is_file(), reason="the shared bank is not here")
def test_shared_bank_gets_its_known_header():
    b = load_bank(SHARED)
    assert len(b) == 640 and b.k == 32
    assert b.params == 494_032_768
    assert b.model["name"] == "Qwen2.5-Coder-0.5B-Instruct"


@pytest.mark.parametrize("tail,match", [
    ('{"i": 1, "gold": 3.0, "prompt_', r"b\.jsonl:2: truncated line"),
    ('{"i": 1}\n', r"b\.jsonl:2: missing field\(s\) gold"),
    ('not json\n', r"b\.jsonl:2: not valid JSON"),
    ('[1, 2]\n', r"b\.jsonl:2: expected a JSON object"),
    (json.dumps({**LINE, "samples": [{"a": 1, "ok": True}]}) + "\n", r"b\.jsonl:2: malformed sample"),
    (json.dumps({**LINE, "samples": [7]}) + "\n", r"b\.jsonl:2: malformed sample"),
    (json.dumps({**LINE, "prompt_tokens": "many"}) + "\n", r"b\.jsonl:2: malformed problem"),
    (json.dumps({**LINE, "samples": []}) + "\n", r"b\.jsonl:2: 'samples' must be a non-empty list"),
])
def test_bad_lines_name_file_and_line(tmp_path, tail, match):
    p = write(tmp_path / "b.jsonl", LINE, raw_tail=tail)
    with pytest.raises(CollmError, match=match):
        load_bank(p)


def test_missing_and_empty(tmp_path):
    with pytest.raises(CollmError, match="bank file not found: .*nope.jsonl"):
        load_bank(tmp_path / "nope.jsonl")
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(CollmError, match="e.jsonl: the bank holds no problems"):
        load_bank(tmp_path / "e.jsonl")
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\n")
    with pytest.raises(CollmError, match="bin.jsonl:1: not UTF-8"):
        load_bank(tmp_path / "bin.jsonl")


def test_merge_refuses_other_models_and_duplicates(tmp_path):
    a = load_bank(write(tmp_path / "a.jsonl", header(sha="s1"), LINE))
    b = load_bank(write(tmp_path / "b.jsonl", header(name="other", sha="s2"), {**LINE, "i": 1}))
    c = load_bank(write(tmp_path / "c.jsonl", header(sha="s1"), {**LINE, "i": 1}))
    d = load_bank(write(tmp_path / "d.jsonl", header(sha="s1"), LINE))
    with pytest.raises(CollmError, match="different models"):
        merge_banks([a, b])
    with pytest.raises(CollmError, match="problem 0 is in both"):
        merge_banks([a, d])
    m = merge_banks([a, c])
    assert [p.i for p in m.problems] == [0, 1]
