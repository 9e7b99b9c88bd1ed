"""Schedules: membership laws, value-object behaviour, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latentgeo.schedules import (
    EveryN,
    Explicit,
    LogSpaced,
    Schedule,
    Union,
    as_schedule,
    default_schedule,
)

NAMESPACE = {"EveryN": EveryN, "Explicit": Explicit, "LogSpaced": LogSpaced, "Union": Union}


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 50), start=st.integers(0, 100), step=st.integers(0, 2000))
def test_every_n_matches_its_definition(n, start, step):
    s = EveryN(n, start=start)
    assert s(step) == (step in range(start, 2001, n))
    assert (step in s) == s(step)


def test_log_spaced_is_dense_early_and_matches_geomspace():
    s = LogSpaced(horizon=1000, num=30)
    early = s.early_steps
    expected = sorted({0, *np.rint(np.geomspace(1, 1000, 30)).astype(int).tolist()})
    assert list(early) == expected
    assert early[:4] == (0, 1, 2, 3) and early[-1] == 1000
    gaps = np.diff(early)
    assert np.all(gaps >= 1) and gaps[-1] > gaps[0]  # sparser later
    assert s.steps(1001) == list(early)
    assert not any(s(t) for t in range(1001, 5000))  # stops at the horizon
    then = LogSpaced(horizon=100, num=10, then_every=250)
    assert [t for t in range(101, 1001) if then(t)] == [250, 500, 750, 1000]


def test_explicit_and_union():
    e = Explicit([30, 5, 5, 0])
    assert e.steps(100) == [0, 5, 30] and 5 in e and 6 not in e
    u = EveryN(10) | e
    assert isinstance(u, Union)
    assert u.steps(35) == [0, 5, 10, 20, 30]
    for t in range(200):  # union law: membership is "any part"
        assert u(t) == (EveryN(10)(t) or e(t))
    assert (u | Explicit([7])).parts == (EveryN(10), e, Explicit([7]))  # flattened


@pytest.mark.parametrize(
    "schedule",
    [
        EveryN(5, start=2),
        LogSpaced(horizon=500, num=20, then_every=100),
        Explicit([1, 2, 8]),
        EveryN(3) | Explicit([4]) | LogSpaced(10, 5),
    ],
)
def test_value_objects(schedule):
    again = eval(repr(schedule), NAMESPACE)  # the repr is a constructor call
    assert again == schedule and hash(again) == hash(schedule)
    assert again.steps(300) == schedule.steps(300)
    with pytest.raises((AttributeError, TypeError)):
        schedule.n = 3  # immutable


def test_default_schedule_and_as_schedule():
    d = default_schedule()
    early = d.steps(1001)
    assert early[:5] == [0, 1, 2, 3, 4] and 20 <= len(early) <= 60
    assert d(5000) and not d(5001)
    assert as_schedule(None) == d
    assert as_schedule(7) == EveryN(7)
    assert as_schedule([3, 1]) == Explicit([1, 3])
    s = EveryN(2)
    assert as_schedule(s) is s
    assert isinstance(s, Schedule)


def test_validation():
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        EveryN(0)
    with pytest.raises(TypeError, match="n must be an int"):
        EveryN(2.5)
    with pytest.raises(TypeError, match="n must be an int"):
        EveryN(True)
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        Explicit([1, -2])
    with pytest.raises(ValueError, match="horizon must be an int >= 1"):
        LogSpaced(horizon=0)
    with pytest.raises(TypeError, match="step must be an int"):
        EveryN(2)("3")
    with pytest.raises(TypeError, match="Union takes schedules"):
        Union(EveryN(2), 3)
    with pytest.raises(TypeError, match="schedule must be"):
        as_schedule("often")
