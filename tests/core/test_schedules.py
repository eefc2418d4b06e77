import math

import pytest

from domadapt import schedules


@pytest.mark.parametrize("name", sorted(schedules.SCHEDULES))
def test_schedules_are_pure_and_bounded(name):
    f = schedules.get_schedule(name)
    values = [f(p / 10) for p in range(11)]
    assert values == [f(p / 10) for p in range(11)]  # pure: same input, same output
    assert all(0.0 <= v <= 1.0 for v in values)
    assert f(-1.0) == f(0.0) and f(2.0) == f(1.0)  # clipped outside [0, 1]


def test_schedule_formulas():
    assert schedules.dann(0.0) == 0.0
    assert schedules.dann(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert schedules.poly(0.5) == pytest.approx(0.5 ** 0.9)
    assert schedules.inv(1.0) == pytest.approx(11 ** -0.75)
    assert schedules.linear(0.25) == 0.25


def test_progress_and_unknown_name():
    assert schedules.progress(5, 10) == 0.5
    assert schedules.progress(50, 10) == 1.0
    assert schedules.progress(3, 0) == 0.0
    with pytest.raises(ValueError, match="unknown schedule 'cosine'.*expected one of"):
        schedules.get_schedule("cosine")
