"""Long recordings spread over workers: one task per window, any worker may take each.

A recording whose probed duration passes `split_seconds` is planned by its transcribe task
(`dispatch`): the upload streams once through the one window cutter (`worker/windows.py`), each
window's samples go to a small file of their own (`windows/{job}/{i}.npy`, int16, in the media
store: under the data directory, or an object any worker can read),
the language is detected once on the first window with speech (unless the job names one or runs
in the code-switching mode, where each window detects its own), the plan goes to Redis
(`shared/state/spread_plans.py`), and each window's task is sent, on the same queue at the job's
priority,
as soon as the window is cut (those before the first with speech once the language is known),
so that other workers decode while this one cuts. The plan then ends with the count of windows,
the transcribe task ends, and the job stays `processing`.

A `diarize=voices` job's windows also embed their speech (`worker/voices.py`) and store the
pieces with their segments; the join clusters all of them at once, so that a speaker keeps
one label over the whole recording (`worker/diarization.py`). A `diarize=channels` job is cut
channel after channel, each into windows of its own (at its own pauses), numbered on from the
channel before; the plan notes each window's channel, and the join assembles each channel's
windows and merges the channels on the recording's clock, one speaker per channel, as a
`channels` job in one process is merged. Its progress counts every channel's seconds, and its
key's audio is charged once, on the first channel's windows.

Each window task decodes its window as the one-process path would (`transcribe_window`), but
without the prompt of the window before it, which runs elsewhere: a few words near a cut may
read differently. Its result (segments on the recording's clock) goes to the job's results hash;
the window that stores the last missing one, found in the same Lua script (or the end of the
plan, where every window was done before it), stitches them in window order, renumbers them,
publishes them as `segment` events in that order and completes the job (no Celery result
backend: the job store is the join). Progress is the sum of the
seconds each window has decoded, over the recording's length, and never goes down.

A window is idempotent and acknowledged late: a pool process killed mid-window has only that
window delivered again and redone; a whole worker gone has its windows requeued by the reaper
(`worker/reaper.py`); a window that raises an unexpected error is retried alone until
`max_attempts`, then fails the job. Windows of a deleted or ended job stop at their next
segment, or are skipped when they start; the window files and the plan go with the job's end.
"""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import asdict
from functools import lru_cache
from typing import Any

import numpy as np
from celery import Task, signals
from celery.exceptions import Reject
from celery.worker.request import Request
from faster_whisper import WhisperModel

from shared.config import Settings, get_settings
from shared.errors import (
    NotMultichannel,
    StorageUnavailable,
    TooManyAttempts,
    TranscriptionError,
    VerbatimError,
)
from shared.logs import bind
from shared.media.opening import MediaSource
from shared.media.probe import probe_channels
from shared.media.storage import media_store, window_prefix
from shared.priorities import REQUEUED_PRIORITY
from shared.queue import WINDOW_TASK, window_signature
from shared.schemas import MAX_CHANNELS, Job, LanguageProbability, Segment, Sound, Transcript
from shared.state.jobs import JobStore
from shared.state.spread_plans import DONE, GONE, STALE, Spreads
from worker import diarization, heartbeat, metrics, voices
from worker.audio import SAMPLE_RATE, pcm_blocks
from worker.celery_app import app
from worker.detection import Detection
from worker.job_state import (
    BROKER_DOWN,
    REDIS_DOWN,
    JobDeleted,
    charged,
    failed,
    job_events,
    job_store,
    log_deleted,
    wait_for_store,
    when_redis_answers,
)
from worker.model import get_model
from worker.pool import Stopped, check_stopping
from worker.reaper import model_of
from worker.speech import speech_regions
from worker.transcriber import (
    assemble,
    first_detection,
    multilingual,
    transcribe_window,
    window_lengths,
)
from worker.windows import Window, windows

log = logging.getLogger(__name__)

# Seconds before a window that raised is tried again.
RETRY_SECONDS = 1.0
# The least stretch searched for a pause to cut a spread recording at.
MIN_SEARCH_SECONDS = 10.0


@lru_cache
def spreads() -> Spreads:
    return Spreads(job_store())


def splits(job: Job, settings: Settings) -> bool:
    """Whether the job's recording is long enough to spread over the workers."""
    return 0 < settings.split_seconds < (job.audio_duration or 0.0)


def spread_lengths(job: Job, settings: Settings) -> tuple[float, float]:
    """The longest window of a spread recording and the stretch before its end searched for a
    pause: windows of about equal length, none longer than `spread_window_seconds` or the job's
    own windows (`window_lengths`), so that a recording of ten windows keeps two workers, or
    five, busy to the end (windows of at most 600 s cut 1245 s into 600, 600 and 45)."""
    longest, search = window_lengths(job.options, settings)
    longest = min(longest, settings.spread_window_seconds)
    duration = job.audio_duration or 0.0
    even = duration / max(1, math.ceil(duration / longest))
    # A window ends in the longest pause of its last fifth (of 10 s at least, so that the pause
    # is one between sentences rather than between two words): on average half of that short
    # of its longest, which the slack makes up.
    search = min(search, max(even / 5, MIN_SEARCH_SECONDS), even / 2)
    return min(longest, even + search / 2), search


def dispatch(job: Job, upload: MediaSource, model: WhisperModel, settings: Settings,
             plan: int) -> None:
    """Cut the job's recording into window files, sending each window's task as soon as it is
    cut (so that other workers decode while this one cuts), then end the plan (made by
    attempt `plan` of the job's task)."""
    if spreads().dispatched(job.id):
        # Delivered again after its windows were all sent, the task only takes the job off its
        # process again: the windows run on their own.
        if not spreads().mark_dispatched(job.id):
            clean(job.id, settings)
            raise JobDeleted
        return
    try:
        count, seconds = _cut(_Plan(job, plan, model, settings), upload, settings)
    except BaseException:
        clean(job.id, settings)  # an upload that cannot be decoded, or a stop: no files left
        raise
    log.info("job spread over windows", extra={"event": "spread", "windows": count})
    finished = spreads().finish_plan(job.id, count, seconds)
    if finished == -1:
        clean(job.id, settings)
        raise JobDeleted
    if finished == 1:  # every window was done before the cutting ended
        _stitch(job.id, settings)


class _Plan:
    """A plan's windows, each sent as it is cut; those cut before the recording's language is
    known (silent ones) wait for it, since every window decodes in that language. A waiting
    window is kept as its place alone (index, first sample, channel): its samples are in the
    store already, and an hour of silence before the first word would otherwise be held here
    whole."""

    def __init__(self, job: Job, plan: int, model: WhisperModel, settings: Settings) -> None:
        self.job, self.plan, self.model, self.settings = job, plan, model, settings
        self.priority = job_store().priority(job.id)
        self.channels = 0  # a `channels` job's count of them (`_cut`), else 0
        self.waiting: list[tuple[int, int, int | None]] = []
        self.begun = False
        # The job names its language, or each window detects its own: nothing to wait for.
        self.detects = job.options.fixed_language is None and not multilingual(job.options,
                                                                               settings)

    def add(self, window: Window, channel: int | None = None) -> None:
        self.waiting.append((window.index, window.start, channel))
        if not self.begun:
            detection = first_detection(self.model, window, self.job.options, self.settings)
            if detection is None and self.detects:
                return
            self._begin(detection, (self.job.audio_duration or 0.0) * max(1, self.channels))
        self._send()

    def end(self, seconds: float) -> None:
        """The plan's windows all cut, `seconds` of them (every channel's)."""
        if not self.begun:  # silent throughout: no language to detect
            self._begin(None, seconds)
        self._send()

    def _begin(self, detection: Detection | None, seconds: float) -> None:
        ranked = [choice.model_dump() for choice in detection.ranked] if detection else None
        spreads().plan(self.job.id, self.plan, seconds, ranked, self.settings.result_ttl_seconds,
                       self.channels)
        self.begun = True

    def _send(self) -> None:
        for index, start, channel in self.waiting:
            spreads().add_window(self.job.id, index, start, channel)
            model = self.job.options.model or self.settings.default_model
            window_signature(app, self.job.id, model, self.plan, index,
                             self.priority).apply_async()
        self.waiting.clear()


def _cut(plan: _Plan, upload: MediaSource, settings: Settings) -> tuple[int, float]:
    """Write the recording's windows to their files (a `channels` job's channel after
    channel), handing each to `plan`: their count and their seconds (every channel's)."""
    job = plan.job
    media = media_store(settings)
    media.remove_prefix(window_prefix(job.id))
    channels = _channels(job, upload, settings)
    plan.channels = 0 if channels == [None] else len(channels)
    count, seconds = 0, 0.0
    for channel in channels:
        end = 0
        blocks = pcm_blocks(upload, settings.max_audio_seconds, channel)
        for cut in windows(blocks, *spread_lengths(job, settings), speech_regions):
            check_stopping()
            if not job_store().redis.exists(JobStore.job_key(job.id)):
                raise JobDeleted  # deleted while it was being cut
            window = Window(count, cut.start, cut.samples)  # numbered on over the channels
            media.put_bytes(_window_key(job.id, window.index), _npy(window.samples))
            plan.add(window, channel)
            count, end = count + 1, window.start + window.samples.size
        seconds += end / SAMPLE_RATE
    plan.end(seconds)
    return count, seconds


def _channels(job: Job, upload: MediaSource, settings: Settings) -> list[int | None]:
    """The channels cut one after the other: each of a `channels` job's, else [None] (all of
    them mixed)."""
    if diarization.mode(job.options, settings) != "channels":
        return [None]
    count = probe_channels(upload)
    if count < 2:
        raise NotMultichannel("diarize=channels needs a recording with a channel per speaker; "
                              "this one has one channel.")
    return list(range(min(count, MAX_CHANNELS)))


@app.task(
    name=WINDOW_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def transcribe_window_task(self: Task, job_id: str, plan: int, index: int) -> None:
    """Transcribe one window of a spread job; the last one to finish completes the job."""
    with bind(job_id=job_id, window=index), metrics.in_flight():
        try:
            _window(self, job_id, plan, index)
        except REDIS_DOWN as exc:
            # As `transcribe`'s (`requeue_held`): the message came by a broker connection lost
            # with Redis, so the window is sent again once Redis answers. A window is
            # idempotent: the old message, should it come back too, finds it done or redoes it.
            log.error("Redis unreachable; the window goes back on the queue once it answers",
                      extra={"event": "requeued"})
            try:
                when_redis_answers(lambda: _send_again(job_id, plan, index))
            except (*BROKER_DOWN, Stopped) as still:
                raise Reject(still, requeue=True) from exc
        except (Stopped, StorageUnavailable) as exc:  # as `transcribe`: requeued
            if isinstance(exc, StorageUnavailable):
                wait_for_store()
            raise Reject(exc, requeue=True) from exc


def _send_again(job_id: str, plan: int, index: int) -> None:
    model = model_of(job_store(), job_id, get_settings().default_model)
    window_signature(app, job_id, model, plan, index, REQUEUED_PRIORITY).apply_async()
    log.warning("window requeued once Redis answered", extra={"event": "requeued"})


@signals.task_received.connect
def _mark_received(request: Request, **_: object) -> None:
    """In the worker's main process, as soon as it holds a window's message: note that it
    does, so the window is requeued should this worker die before starting it."""
    if request.name != WINDOW_TASK or len(request.args) != 3:
        return
    job_id, _, index = request.args
    try:
        spreads().mark_received(str(job_id), int(index), heartbeat.node_id())
    except REDIS_DOWN as exc:  # the window still runs; only its requeue on a crash is lost
        log.warning("window not marked as received: %s", exc, extra={"job_id": job_id})


def _window(task: Task, job_id: str, plan: int, index: int) -> None:
    settings = get_settings()
    attempt = spreads().begin_window(job_id, plan, index, heartbeat.worker_id())
    if attempt in (GONE, STALE):
        if attempt == GONE:
            clean(job_id, settings)
        log.info("window skipped: %s", "job over" if attempt == GONE else "older plan",
                 extra={"event": "skipped"})
        return
    if attempt == DONE:  # delivered again after its result was stored
        if spreads().complete(job_id):
            _stitch(job_id, settings)
        return
    log.info("window started", extra={"event": "window_started", "attempt": attempt})
    try:
        if attempt > settings.max_attempts:
            raise TooManyAttempts(f"A window was delivered {attempt} times without finishing.")
        result, over = _decode(job_id, index, settings)
    except JobDeleted:
        log_deleted()
        clean(job_id, settings)
        return
    except (Stopped, StorageUnavailable) as exc:
        log.warning("%s; the window goes back on the queue",
                    "media store unreachable" if isinstance(exc, StorageUnavailable)
                    else "worker stopping", extra={"event": "requeued"})
        spreads().stop_running(job_id, index)
        raise
    except VerbatimError as exc:
        _fail(job_id, exc, settings)
        return
    except REDIS_DOWN:
        raise
    except Exception as exc:
        if attempt < settings.max_attempts:
            log.warning("window failed; tried again alone", exc_info=True,
                        extra={"event": "window_retry", "attempt": attempt})
            raise task.retry(exc=exc, countdown=RETRY_SECONDS, max_retries=None) from exc
        log.exception("unexpected error in the worker")
        _fail(job_id, TranscriptionError("Transcription failed inside the worker."), settings)
        return
    joined = spreads().join(job_id, index, result)
    if joined == -1:
        clean(job_id, settings)
    elif over is not None or joined == 1:  # `over`: the job ends here, with what is decoded
        _stitch(job_id, settings, over)


def _decode(job_id: str, index: int, settings: Settings
            ) -> tuple[dict[str, Any], VerbatimError | None]:
    """The window's segments and the languages it heard, and `quota_exceeded` where charging
    its audio spent its key's day (it is decoded all the same: it was charged); raises
    `JobDeleted` as soon as the job is gone or ended."""
    job, plan = job_store().get(job_id), spreads().read_plan(job_id)
    if job is None or not plan:
        raise JobDeleted
    samples = np.load(io.BytesIO(media_store(settings).get_bytes(_window_key(job_id, index))))
    window = Window(index, plan["starts"][index], samples)
    channel = plan["channel_of"].get(index)
    over = None
    if not channel:  # a `channels` job's audio is charged once, on its first channel
        over = charged(job_id, str(index))(samples.size / SAMPLE_RATE)
    model = get_model(settings, job.options.model)

    def decoded(seconds: float) -> None:
        check_stopping()  # a `threads` pool out of shutdown grace (`worker/pool.py`)
        fraction = spreads().progress(job_id, index, seconds)
        if fraction is None:
            raise JobDeleted
        job_events().progress(job_id, fraction)

    def on_segment(segment: Segment) -> None:
        decoded(segment.end - window.start_seconds)

    voiced = channel is None and diarization.mode(job.options, settings) == "voices"
    timed = voiced or channel is not None  # a diarized job has word timings
    options = job.options.model_copy(update={"word_timestamps": True}) if timed else job.options
    segments, heard, sounds = transcribe_window(model, window, options, settings,
                                                _detection(plan["detection"]), on_segment)
    result: dict[str, Any] = {
        "segments": [s.model_dump(mode="json") for s in segments], "heard": heard,
        "sounds": None if sounds is None else [s.model_dump(mode="json") for s in sounds],
        "channel": channel}
    if voiced:  # embedded here, clustered once for the whole recording at the join
        result["pieces"] = [asdict(p) for p in voices.pieces(window, voices.get_embedder())]
    decoded(window.end_seconds - window.start_seconds)
    return result, over


def _stitch(job_id: str, settings: Settings, error: VerbatimError | None = None) -> None:
    """Complete the job with every window's segments, in order, numbered from 0; or, with
    `error`, fail it keeping the segments of the windows done so far."""
    store, events = job_store(), job_events()
    job, plan = store.get(job_id), spreads().read_plan(job_id)
    if job is None or not plan:
        clean(job_id, settings)
        return
    results = spreads().results(job_id)
    if channels := int(plan.get("channels", 0)):  # each channel's windows, then merged
        each = [_assembled([r for r in results if r.get("channel") == channel], plan, job,
                           settings, channels)[0] for channel in range(channels)]
        transcript = diarization.merged(each, job.options)
    else:
        transcript, pieces = _assembled(results, plan, job, settings)
        if diarization.mode(job.options, settings) == "voices" and error is None:
            transcript = diarization.by_pieces(transcript, pieces, job.options, settings,
                                               store.owner(job_id), job_id)
    if error is not None:
        failed(job_id, error, store, settings, transcript)
        clean(job_id, settings)
        return
    for segment in transcript.segments:
        events.segment(job_id, segment)
    if store.complete(job_id, transcript, settings.result_ttl_seconds):
        events.completed(job_id, transcript)
        seconds = time.time() - job.started_at.timestamp() if job.started_at else 0.0
        metrics.job_completed(seconds, transcript.duration)
        heartbeat.job_done()
        log.info("job completed", extra={
            "event": "completed", "duration_seconds": round(seconds, 3),
            "audio_seconds": round(transcript.duration, 3),
            "segments": len(transcript.segments),
            "windows": int(plan["windows"]),
        })
    clean(job_id, settings)


def _assembled(results: list[dict[str, Any]], plan: dict[str, Any], job: Job,
               settings: Settings, channels: int = 1
               ) -> tuple[Transcript, list[voices.Piece]]:
    """The transcript of the windows' `results` (in window order; of one channel of
    `channels`), and the pieces of speech they embedded."""
    segments: list[Segment] = []
    heard: dict[str, float] = {}
    pieces: list[voices.Piece] = []
    sounds: list[Sound] | None = None
    for result in results:
        for raw in result["segments"]:
            segments.append(Segment.model_validate(raw | {"id": len(segments)}))
        for language, weight in result["heard"].items():
            heard[language] = heard.get(language, 0.0) + weight
        pieces.extend(voices.Piece(**p) for p in result.get("pieces", []))
        if result.get("sounds") is not None:  # the job asked for sounds (issue 25)
            sounds = [*(sounds or []), *map(Sound.model_validate, result["sounds"])]
    transcript = assemble(segments, _detection(plan["detection"]), heard, job.options,
                          settings, float(plan["seconds"]) / channels, sounds)
    return transcript, pieces


def _fail(job_id: str, error: VerbatimError, settings: Settings) -> None:
    failed(job_id, error, job_store(), settings)
    clean(job_id, settings)


def clean(job_id: str, settings: Settings) -> None:
    """Remove the job's window files and plan."""
    spreads().remove(job_id)
    try:
        media_store(settings).remove_prefix(window_prefix(job_id))
    except StorageUnavailable as exc:  # the sweep removes them once the job record is gone
        log.warning("windows left for the sweep: %s", exc.message)


def _window_key(job_id: str, index: int) -> str:
    return f"{window_prefix(job_id)}{index}.npy"


def _npy(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, samples)
    return buffer.getvalue()


def _detection(ranked: list[dict[str, Any]] | None) -> Detection | None:
    if ranked is None:
        return None
    return Detection([LanguageProbability.model_validate(choice) for choice in ranked])
