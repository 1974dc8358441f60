"""Answer extraction and grading, by task."""

import pytest

from collm.answers import get_task
from collm.errors import CollmError

gsm = get_task("gsm8k")


@pytest.mark.parametrize("text,expected", [
    ("so the answer is \\boxed{18}.", "18"),
    ("The total is $1,234.", "1234"),
    ("She pays \\$5.50 in all, \\boxed{\\$5.50}", "5.5"),
    ("The change is -7 degrees", "-7"),
    ("Answer: \\boxed{-12}", "-12"),
    ("\\boxed{\\frac{3}{4}}", "0.75"),
    ("\\boxed{\\dfrac{1}{2}} of the cake", "0.5"),
    ("it is 3/4 of it", "0.75"),
    ("\\boxed{25\\%}", "25"),
    ("\\boxed{10 \\text{ apples}}", "10"),
    ("first 3 then 5 so \\boxed{8} and later 9", "8"),  # the box wins over the last number
    ("48 + 24 = 72 clips", "72"),
    ("#### 1,000", "1000"),
    ("\\boxed{1{,}200}", "1200"),
    ("x = 2.50", "2.5"),
])
def test_numbers_extracted(text, expected):
    assert gsm.extract(text) == expected


@pytest.mark.parametrize("text", ["", "I do not know.", "\\boxed{}", "\\boxed{abc}", "\\boxed{12", "no digits here!"])
def test_garbage_is_no_answer(text):
    assert gsm.extract(text) is None


def test_unbalanced_box_does_not_fall_back_to_guessing():
    # an unfinished \boxed{ is no answer, even if numbers appear before it
    assert gsm.extract("we get 5 so \\boxed{1") is None


@pytest.mark.parametrize("answer,gold,ok", [
    ("18", "18", True), ("18.0", 18.0, True), ("18", "Janet... #### 18", True),
    ("17", "18", False), (None, "18", False), ("0.75", "3/4", True), ("1000", "1,000", True),
    ("-3", "3", False),
])
def test_number_grading(answer, gold, ok):
    assert gsm.grade(answer, gold) is ok


math = get_task("math")


def test_math_extract_and_verify():
    assert math.extract("so \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert math.grade(math.extract("\\boxed{\\dfrac{1}{2}}"), "\\frac12")
    assert math.grade("0.5", "\\frac{1}{2}")
    assert math.grade(math.extract("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}"), "\\left( 3, \\frac{\\pi}{2} \\right)")
    assert not math.grade("\\frac{1}{3}", "\\frac{1}{2}")
    assert math.extract("no box at all") is None
    assert not math.grade(None, "1")


choice = get_task("choice")


@pytest.mark.parametrize("text,expected", [
    ("The answer is (B).", "B"), ("\\boxed{C}", "C"), ("Answer: D", "D"), ("... so E", "E"),
    ("\\boxed{\\text{(A)}}", "A"), ("I cannot tell", None), ("\\boxed{42}", None),
])
def test_choice(text, expected):
    assert choice.extract(text) == expected


def test_unknown_task():
    with pytest.raises(CollmError, match="unknown task"):
        get_task("nope")
