"""The Redis side of a spread recording, on a real Redis: progress summed over windows and never
lowered, the join found by exactly one window, stale and finished windows told apart, a call cut
channel by channel noting each window's channel."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.schemas import JobOptions, JobStatus
from shared.state.jobs import JobStore, new_job_id
from shared.state.spread_plans import DONE, GONE, STALE, Spreads


@pytest.fixture
def spreads(redis_url: str) -> Spreads:
    return Spreads(JobStore.from_url(redis_url))


def processing_job(spreads: Spreads, windows: int = 3, seconds: float = 30.0) -> str:
    job_id = new_job_id()
    spreads.store.create(job_id, "long.wav", JobOptions(), seconds, Path("/nonexistent"))
    spreads.store.update(job_id, status=JobStatus.processing)
    spreads.plan(job_id, 1, seconds, None, 60)
    for index in range(windows):
        spreads.add_window(job_id, index, index * 160000)
    assert spreads.finish_plan(job_id, windows, seconds) == 0
    return job_id


def test_progress_is_the_sum_over_windows_and_never_goes_down(spreads: Spreads) -> None:
    job_id = processing_job(spreads)
    assert spreads.progress(job_id, 0, 6.0) == pytest.approx(0.2)
    assert spreads.progress(job_id, 1, 3.0) == pytest.approx(0.3)
    assert spreads.progress(job_id, 0, 1.0) == pytest.approx(0.3)  # window 0 delivered again
    job = spreads.store.get(job_id)
    assert job is not None
    assert job.progress == pytest.approx(0.3)
    assert spreads.progress(job_id, 2, 10.0) == pytest.approx(19 / 30, abs=1e-4)


def test_the_window_that_stores_the_last_result_stitches(spreads: Spreads) -> None:
    job_id = processing_job(spreads)
    assert spreads.begin_window(job_id, 1, 0, "host:1") == 1
    assert spreads.begin_window(job_id, 2, 0, "host:1") == STALE  # a message of another plan
    assert spreads.join(job_id, 2, {"segments": [], "heard": {}}) == 0
    assert spreads.join(job_id, 0, {"segments": [{"id": 0}], "heard": {}}) == 0
    assert spreads.begin_window(job_id, 1, 0, "host:2") == DONE
    assert not spreads.complete(job_id)
    assert spreads.join(job_id, 1, {"segments": [{"id": 5}], "heard": {}}) == 1
    assert spreads.complete(job_id)
    assert [r["segments"] for r in spreads.results(job_id)] == [[{"id": 0}], [{"id": 5}], []]


def test_windows_done_before_the_plan_ends_are_stitched_by_its_end(spreads: Spreads) -> None:
    """Windows are sent as they are cut: all of them may finish before the cutting ends."""
    job_id = new_job_id()
    spreads.store.create(job_id, "long.wav", JobOptions(), 20.0, Path("/nonexistent"))
    spreads.store.update(job_id, status=JobStatus.processing, worker="host:1")
    spreads.plan(job_id, 1, 20.0, None, 60)  # the probed length, until the plan ends
    for index in range(2):
        spreads.add_window(job_id, index, index * 160000)
        assert spreads.begin_window(job_id, 1, index, "host:2") == 1
        assert spreads.join(job_id, index, {"segments": [], "heard": {}}) == 0  # no count yet
        assert not spreads.complete(job_id)
    assert spreads.read_plan(job_id)["starts"] == {0: 0, 1: 160000}
    assert spreads.progress(job_id, 0, 10.0) == pytest.approx(0.5)
    assert spreads.finish_plan(job_id, 2, 19.5) == 1  # the last result came first: stitch
    assert spreads.complete(job_id)
    assert spreads.read_plan(job_id)["seconds"] == "19.5"
    assert spreads.dispatched(job_id)
    assert spreads.store.redis.hget(spreads.store.job_key(job_id), "worker") is None


def test_a_call_cut_by_channel_notes_each_windows_channel_and_counts_every_channel(
    spreads: Spreads,
) -> None:
    """Issue 21: two channels of 10 s, a window each, numbered on over the channels."""
    job_id = new_job_id()
    spreads.store.create(job_id, "call.wav", JobOptions(diarize="channels"), 10.0,
                         Path("/nonexistent"))
    spreads.store.update(job_id, status=JobStatus.processing)
    spreads.plan(job_id, 1, 20.0, None, 60, channels=2)
    for channel in range(2):
        spreads.add_window(job_id, channel, 0, channel)  # each channel's from its first sample
    plan = spreads.read_plan(job_id)
    assert (plan["channels"], plan["starts"], plan["channel_of"]) == ("2", {0: 0, 1: 0},
                                                                       {0: 0, 1: 1})
    assert spreads.finish_plan(job_id, 2, 20.0) == 0
    assert spreads.progress(job_id, 0, 10.0) == pytest.approx(0.5)  # one channel of two
    assert spreads.read_plan(processing_job(spreads))["channel_of"] == {}


def test_windows_of_a_deleted_job_stop(spreads: Spreads) -> None:
    job_id = processing_job(spreads)
    assert spreads.begin_window(job_id, 1, 1, "host:1") == 1
    assert [(r[0], r[2], r[3]) for r in spreads.running() if r[0] == job_id] == [
        (job_id, 1, "host:1")]
    spreads.store.delete(job_id)
    assert spreads.begin_window(job_id, 1, 0, "host:1") == GONE
    assert spreads.progress(job_id, 1, 5.0) is None
    assert spreads.join(job_id, 1, {"segments": [], "heard": {}}) == -1
    assert not spreads.mark_dispatched(job_id)
    assert spreads.finish_plan(job_id, 3, 30.0) == -1
    spreads.remove(job_id)
    assert not [r for r in spreads.running() if r[0] == job_id]


def test_a_held_window_is_marked_by_its_worker_until_a_process_begins_it(
    spreads: Spreads,
) -> None:
    job_id = processing_job(spreads)
    assert spreads.mark_received(job_id, 1, "host:10")
    assert not spreads.mark_received(job_id, 1, "host:11")  # held twice: the first mark stays
    assert [(r[2], r[3]) for r in spreads.running() if r[0] == job_id] == [(1, "host:10")]
    assert spreads.begin_window(job_id, 1, 1, "host:12") == 1
    assert [(r[2], r[3]) for r in spreads.running() if r[0] == job_id] == [(1, "host:12")]
    assert not spreads.mark_received(job_id, 1, "host:10")  # a process runs it: left alone
    running = f"verbatim:spread:{job_id}:running"
    assert 0 < spreads.redis.ttl(running) <= 60  # it goes with the plan


def test_a_window_of_a_gone_plan_is_not_marked(spreads: Spreads) -> None:
    job_id = processing_job(spreads)
    spreads.remove(job_id)
    assert not spreads.mark_received(job_id, 0, "host:10")
    assert not spreads.redis.exists(f"verbatim:spread:{job_id}:running")
