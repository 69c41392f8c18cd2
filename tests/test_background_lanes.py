"""A job with a lane of its own (saas.jobs.BackgroundQueue.lane) runs beside the background thread's jobs,
``join`` waits for it too, and a call that finds its lane full is left to the job's sweep (dropped here)."""
from __future__ import annotations

import threading

from saas.jobs import BackgroundQueue

HERE = "tests.test_background_lanes"
GATE = threading.Event()      # let go of the jobs that wait
STARTED = threading.Event()   # a waiting job has begun
NOTED = threading.Event()
RAN: list = []


def waits(value=None) -> None:
    STARTED.set()
    assert GATE.wait(10)
    RAN.append(value)


def notes(value) -> None:
    RAN.append(value)
    NOTED.set()


def fresh():
    for flag in (GATE, STARTED, NOTED):
        flag.clear()
    RAN.clear()


def test_a_lane_runs_while_the_background_thread_is_busy(app):
    fresh()
    background = BackgroundQueue(app)
    background.lane(f"{HERE}.notes", threads=2, bound=10)
    background.enqueue(f"{HERE}.waits", "applying")
    assert STARTED.wait(10)
    background.enqueue(f"{HERE}.notes", "reply")
    try:
        assert NOTED.wait(10)  # the background thread still waits in the first job
        assert RAN == ["reply"]
        assert not background.join(0.05)
    finally:
        GATE.set()
    assert background.join(10)
    assert RAN == ["reply", "applying"]


def test_a_full_lane_leaves_the_call_and_join_still_ends(app):
    fresh()
    background = BackgroundQueue(app)
    background.lane(f"{HERE}.waits", threads=1, bound=1)
    background.enqueue(f"{HERE}.waits", "first")
    assert STARTED.wait(10)           # the lane's one thread holds the first call
    background.enqueue(f"{HERE}.waits", "second")  # waits in the lane
    background.enqueue(f"{HERE}.waits", "third")   # the lane is full: left to the sweep
    GATE.set()
    assert background.join(10)
    assert RAN == ["first", "second"]


def gathers(value) -> None:
    raise AssertionError("a lane with a batch runs the job's batch form")


def _gathered(calls) -> None:
    values = [args[0] for args in calls]
    if "first" in values:
        STARTED.set()
        assert GATE.wait(10)
    RAN.append(values)


gathers.batch = _gathered


def test_a_lane_thread_takes_every_waiting_call_at_once_up_to_its_batch(app):
    fresh()
    background = BackgroundQueue(app)
    background.lane(f"{HERE}.gathers", threads=1, bound=10, batch=3)
    background.enqueue(f"{HERE}.gathers", "first")
    assert STARTED.wait(10)           # the lane's one thread holds the first call
    for value in "abcd":
        background.enqueue(f"{HERE}.gathers", value)  # they wait together
    GATE.set()
    assert background.join(10)
    assert RAN == [["first"], ["a", "b", "c"], ["d"]]
