"""Your own questions as a dataset: the reader's errors name the line, and
--skip-bad-rows skips and counts what it would refuse; the CLI flags reach it."""

from __future__ import annotations

import json

import pytest

from collm.datasets import load_dataset
from collm.datasets.files import read_file
from collm.errors import CollmError


def jsonl(tmp_path, rows, name="q.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


def test_rows_keep_their_line_number_as_id(tmp_path):
    p = jsonl(tmp_path, [{"q": "1 + 1?", "a": "2", "src": "x"}, "", {"q": "2 + 2?", "a": "4"}])
    probs = read_file(p, question_field="q", answer_field="a", task="number").problems
    assert [(x.id, x.question, x.gold, x.task) for x in probs] == [(1, "1 + 1?", "2", "number"), (3, "2 + 2?", "4", "number")]
    assert probs[0].meta == {"src": "x"}


@pytest.mark.parametrize("row,task,needle", [
    ({"question": "q?"}, "number", "no field 'answer'"),
    ({"question": "  ", "answer": "3"}, "number", "the question is empty"),
    ({"question": "q?", "answer": "three"}, "number", "is not a number"),
    ({"question": "q?", "answer": "F"}, "choice", "is not a letter A-E"),
    ({"question": "q?", "answer": "(unclosed"}, "regex", "not a valid regular expression"),
    ({"question": "q?", "answer": ""}, "exact", "the gold answer is empty"),
    ("{not json", "number", "not valid JSON"),
    ("[1, 2]", "number", "not a JSON object"),
])
def test_a_bad_row_is_named_by_its_line(tmp_path, row, task, needle):
    p = jsonl(tmp_path, [{"question": "fine?", "answer": "B" if task == "choice" else "1"}, row])
    with pytest.raises(CollmError) as e:
        read_file(p, task=task)
    assert f"{p}:2: " in str(e.value) and needle in str(e.value) and "--skip-bad-rows" in str(e.value)


def test_skip_bad_rows_skips_and_counts(tmp_path):
    p = jsonl(tmp_path, [{"question": "a?", "answer": "1"}, {"question": "b?"}, {"question": "c?", "answer": "x"},
                         {"question": "d?", "answer": "4"}])
    rows = read_file(p, skip_bad_rows=True)
    assert [x.id for x in rows.problems] == [1, 4]
    assert [ln for ln, _ in rows.skipped] == [2, 3]


def test_csv_rows_are_numbered_by_the_line_they_start_on(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text('question,answer\n"two\nlines?",5\nthird?,6\n')
    probs = read_file(p).problems
    assert [(x.id, x.gold) for x in probs] == [(2, "5"), (4, "6")]


def test_unknown_task_missing_file_and_other_formats(tmp_path):
    with pytest.raises(CollmError, match="not found"):
        read_file(tmp_path / "none.jsonl")
    p = jsonl(tmp_path, [{"question": "q", "answer": "1"}])
    with pytest.raises(CollmError, match="unknown task|task"):
        read_file(p, task="nope")
    other = tmp_path / "q.parquet"
    other.write_bytes(b"PAR1")
    with pytest.raises(CollmError, match="jsonl or .csv"):
        load_dataset(str(other))


def test_fields_given_for_a_named_dataset_are_refused():
    with pytest.raises(CollmError, match="applies to a dataset file"):
        load_dataset("gsm8k", question_field="q")


def test_the_cli_reports_a_bad_row_by_line_and_skips_with_the_flag(tmp_path, capsys):
    from collm.cli import main

    p = jsonl(tmp_path, [{"q": "a?", "gold": "1"}, {"q": "b?"}])
    base = ["bank", "build", "--upstream", "http://127.0.0.1:9/v1", "--upstream-params", "135M", "--k", "2",
            "--dataset", str(p), "--question-field", "q", "--answer-field", "gold", "--out", str(tmp_path / "b.jsonl")]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert f"{p}:2: no field 'gold'" in err and "Traceback" not in err
    # skipped: the one good row is read, and then the (unreachable) upstream is the error
    assert main(base + ["--skip-bad-rows"]) == 2
    err = capsys.readouterr().err
    assert "skipped 1 bad row(s)" in err and "lines 2" in err and "cannot reach upstream" in err
