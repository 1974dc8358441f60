import pytest

from collm.allocation.bucket import TokenBucket


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_bucket_refills_each_second_up_to_capacity():
    c = Clock()
    b = TokenBucket(100, 10, clock=c)
    assert b.try_take(100) and not b.try_take(1)
    c.t = 2.5
    assert b.level == pytest.approx(25)
    assert b.wait_time(50) == pytest.approx(2.5)
    c.t = 100
    assert b.level == 100  # never above capacity
    assert b.wait_time(101) == float("inf")


def test_take_up_to_and_refund_never_overdraw():
    c = Clock()
    b = TokenBucket(10, 1, clock=c)
    assert b.take_up_to(25) == 10 and b.level == 0
    b.refund(4)
    assert b.level == 4
    b.refund(100)
    assert b.level == 10


def test_bad_bucket():
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
