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


def sample(**kw):
    return {**LINE["samples"][0], **kw}


def with_sample(**kw):
    return {**LINE, "samples": [LINE["samples"][0], sample(**kw)]}


# values a lenient reading took (bool("false") is True, int(5.7) is 5, ...)
@pytest.mark.parametrize("line,match", [
    (with_sample(ok="false"), r"b\.jsonl:2: malformed sample \(samples\[1\]\.ok: must be true or false \(got \"false\"\)"),
    (with_sample(ok=1), r"b\.jsonl:2: malformed sample \(samples\[1\]\.ok: must be true or false"),
    (with_sample(n=-3), r"b\.jsonl:2: malformed sample \(samples\[1\]\.n: .*greater than or equal to 0"),
    (with_sample(n=5.7), r"b\.jsonl:2: malformed sample \(samples\[1\]\.n: .*valid integer \(got 5\.7\)"),
    (with_sample(n=True), r"b\.jsonl:2: malformed sample \(samples\[1\]\.n: .*valid integer"),
    (with_sample(lp=float("nan")), r"b\.jsonl:2: malformed sample \(samples\[1\]\.lp: .*finite number \(got NaN\)"),
    (with_sample(lp=float("-inf")), r"b\.jsonl:2: malformed sample \(samples\[1\]\.lp: .*finite number"),
    (with_sample(lp="-1.0"), r"b\.jsonl:2: malformed sample \(samples\[1\]\.lp: .*valid number"),
    (with_sample(a=[3]), r"b\.jsonl:2: malformed sample \(samples\[1\]\.a: must be a number, a string or null"),
    (with_sample(a=True), r"b\.jsonl:2: malformed sample \(samples\[1\]\.a: must be a number, a string or null"),
    (with_sample(f=7), r"b\.jsonl:2: malformed sample \(samples\[1\]\.f: .*valid string"),
    (with_sample(t=["x"]), r"b\.jsonl:2: malformed sample \(samples\[1\]\.t: .*valid string"),
    ({**LINE, "greedy": sample(ok="true")}, r"b\.jsonl:2: malformed sample \(greedy\.ok: must be true or false"),
    ({**LINE, "q_entropy": [1.0, "2"]}, r"b\.jsonl:2: malformed problem \(q_entropy\[1\]: .*valid number"),
    ({**LINE, "q_nll": 0.5}, r"b\.jsonl:2: malformed problem \(q_nll: must be a list"),
    ({**LINE, "i": "0"}, r"b\.jsonl:2: malformed problem \(i: .*valid integer"),
    ({**LINE, "prompt_tokens": 50.5}, r"b\.jsonl:2: malformed problem \(prompt_tokens: .*valid integer"),
    ({**LINE, "gold": None}, r"b\.jsonl:2: malformed problem \(gold: must be a number or a string"),
])
def test_fields_are_checked_strictly(tmp_path, line, match):
    p = write(tmp_path / "b.jsonl", {**LINE, "i": 1}, line)
    with pytest.raises(CollmError, match=match):
        load_bank(p)


def test_json_numbers_and_optional_fields_still_read(tmp_path):
    """Integers where floats are meant, a string answer, null f and t, unknown
    sample keys: all as before."""
    line = {**LINE, "gold": "3", "q_entropy": [1, 2], "greedy": {"a": "3", "ok": True, "n": 0, "lp": -1},
            "samples": [sample(a=3, f=None, t=None, extra=1), sample(a="x/2")]}
    p = load_bank(write(tmp_path / "b.jsonl", line)).problems[0]
    assert p.q_entropy == [1.0, 2.0] and p.greedy.lp == -1.0 and isinstance(p.greedy.lp, float)
    assert p.gold == "3" and [s.a for s in p.samples] == [3, "x/2"] and p.samples[0].f is None


@pytest.mark.parametrize("head,match", [
    ({"collm_bank": 1, "model": {"name": "m", "params": "big"}}, r"b\.jsonl:1: malformed header \(model\.params: .*valid integer \(got \"big\"\)"),
    ({"collm_bank": 1, "model": {"params": -5}}, r"b\.jsonl:1: malformed header \(model\.params: .*greater than or equal to 0"),
    ({"collm_bank": 1, "model": ["m", 10]}, r"b\.jsonl:1: malformed header \(model: must be a JSON object"),
    ({"collm_bank": 1, "model": {"name": 7}}, r"b\.jsonl:1: malformed header \(model\.name: .*valid string"),
    ({"collm_bank": 1, "sampling": "t=0.8"}, r"b\.jsonl:1: malformed header \(sampling: must be a JSON object"),
    ({"collm_bank": 1, "sampling": {"max_tokens": "400"}}, r"b\.jsonl:1: malformed header \(sampling\.max_tokens: "),
    ({"collm_bank": 1, "sampling": {"k": 0}}, r"b\.jsonl:1: malformed header \(sampling\.k: .*greater than 0"),
    ({"collm_bank": 1, "dataset": ["gsm8k"]}, r"b\.jsonl:1: malformed header \(dataset: .*valid string"),
])
def test_headers_are_checked(tmp_path, head, match):
    with pytest.raises(CollmError, match=match):
        load_bank(write(tmp_path / "b.jsonl", head, LINE))


def test_sidecar_header_is_checked(tmp_path):
    p = write(tmp_path / "b.jsonl", LINE)
    (tmp_path / "b.jsonl.meta.json").write_text(json.dumps({"collm_bank": 1, "model": {"params": "big"}}))
    with pytest.raises(CollmError, match=r"b\.jsonl\.meta\.json: malformed header \(model\.params"):
        load_bank(p)
    (tmp_path / "b.jsonl.meta.json").write_text("[1]")
    with pytest.raises(CollmError, match=r"b\.jsonl\.meta\.json: malformed header \(a header must be a JSON object"):
        load_bank(p)


def test_ragged_and_duplicate_problems_refused_unless_allowed(tmp_path):
    short = {**LINE, "i": 1, "samples": LINE["samples"][:1]}
    ragged = write(tmp_path / "r.jsonl", header(), LINE, short)
    with pytest.raises(CollmError, match=r"r\.jsonl:3: problem 1 has 1 sample where the first problem \(line 2\) "
                                         r"has 2; --allow-ragged"):
        load_bank(ragged)
    b = load_bank(ragged, allow_ragged=True)
    assert len(b) == 2 and b.k == 1
    twice = write(tmp_path / "d.jsonl", LINE, {**LINE, "i": 1}, LINE)
    with pytest.raises(CollmError, match=r"d\.jsonl:3: problem 0 is in the bank twice \(first on line 1\)"):
        load_bank(twice)
    assert [p.i for p in load_bank(twice, allow_ragged=True).problems] == [0, 1, 0]


def test_resume_checks_lines_with_the_schema(tmp_path):
    from collm.bank.build import resume

    p = write(tmp_path / "b.jsonl", header(), LINE, with_sample(ok="false"))
    with open(p, "a+b") as f, pytest.raises(CollmError, match=r"b\.jsonl:3: malformed sample \(samples\[1\]\.ok"):
        resume(f, p, header())
