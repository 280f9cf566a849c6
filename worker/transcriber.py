"""The one adapter to faster-whisper: audio file + options in, canonical transcript out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.transcribe import Segment as FWSegment
from faster_whisper.transcribe import Word as FWWord
from faster_whisper.transcribe import restore_speech_timestamps
from faster_whisper.vad import collect_chunks

from shared.config import Settings
from shared.errors import VerbatimError
from shared.media.opening import MediaSource
from shared.schemas import JobOptions, Segment, Sound, Transcript, Word
from worker.audio import SAMPLE_RATE, pcm_blocks, to_float
from worker.detection import Detection, detect, ranked
from worker.model import resolve_device
from worker.script import in_script
from worker.sounds import classify, joined, merge, music_only, over_music, patch_labels
from worker.speech import (
    Regions,
    activity,
    decoded_speech,
    doubtful,
    is_speech,
    regions_of,
    silent,
    speech_regions,
    within,
)
from worker.windows import Window, split_by_language, windows

# `batch_size` where neither the job nor the settings choose one. On CPU, sequential decoding
# keeps faster-whisper's exact output and its temperature fallback (batching 4 measured 1.3 to
# 1.5x faster on 2 loaded cores: docs/guides/jobs.md); a GPU decodes eight 30-second stretches
# at once for little more than the cost of one.
DEFAULT_BATCH_SIZE = {"cpu": 1, "cuda": 8}
# Segments of text before a window that prompt its decoding.
PROMPT_SEGMENTS = 8
# Where words are timed, faster-whisper skips silences this long around hallucinations.
HALLUCINATION_SILENCE_SECONDS = 2.0
# A window with less speech than this share of it is decoded at temperature 0 only: the
# fallback loop over noise or music costs several times real time and finds no words.
SPARSE_SPEECH = 0.1
# Code-switching mode: a region of speech at least this long has its own language detected,
# and it is decoded in that language where detection is at least this sure of it.
REGION_SECONDS = 1.5
SWITCH_PROBABILITY = 0.6
# Speech (VAD's) of at least this many seconds that the model passed over, returning no segment
# for it, is decoded again alone (issue 21: with word timings, faster-whisper can end a
# window's decoding early and drop a whole turn that the job without them keeps).
MISSED_SPEECH = 1.0

ProgressCallback = Callable[[float], None]
SegmentCallback = Callable[[Segment], None]
# Told the seconds decoded so far; an error it returns stops the decoding there.
DecodedCallback = Callable[[float], VerbatimError | None]
# Told each window with speech and its speech regions, before it is decoded.
SpeechCallback = Callable[[Window, Regions], None]


class PartlyDone(Exception):
    """The decoding stopped at a limit (`error`); `transcript` is what was decoded before it."""

    def __init__(self, error: VerbatimError, transcript: Transcript) -> None:
        super().__init__(error.message)
        self.error, self.transcript = error, transcript


def whisper_kwargs(options: JobOptions, settings: Settings) -> dict[str, Any]:
    """The arguments to `WhisperModel.transcribe` for a job's options."""
    kwargs: dict[str, Any] = {
        "language": options.fixed_language,
        "task": options.task,
        "beam_size": options.beam_size or settings.beam_size,
        "vad_filter": settings.vad_filter if options.vad_filter is None else options.vad_filter,
        "word_timestamps": options.word_timestamps,
        "initial_prompt": options.initial_prompt,
        "hotwords": options.hotwords,
    }
    if options.word_timestamps:
        kwargs["hallucination_silence_threshold"] = HALLUCINATION_SILENCE_SECONDS
    if options.temperature is not None:  # else faster-whisper's fallback schedule 0, 0.2 .. 1
        kwargs["temperature"] = options.temperature
    return kwargs


def batch_size(options: JobOptions, settings: Settings) -> int:
    """How many stretches of speech to decode at once: the job's choice, else the server's
    default for this device wherever VAD is on (batched decoding needs it), else 1."""
    if options.batch_size is not None:
        return options.batch_size
    vad = settings.vad_filter if options.vad_filter is None else options.vad_filter
    if not vad:
        return 1
    device, _ = resolve_device(settings)
    return settings.batch_size or DEFAULT_BATCH_SIZE[device]


def transcribe(
    model: WhisperModel,
    audio: MediaSource,
    options: JobOptions,
    settings: Settings,
    on_progress: ProgressCallback,
    expected_seconds: float | None = None,
    on_segment: SegmentCallback | None = None,
    on_decoded: DecodedCallback | None = None,
    on_speech: SpeechCallback | None = None,
) -> Transcript:
    """Run the model over the recording (`transcribe_blocks`), all its channels mixed.

    `on_decoded` hears how many seconds are decoded as each block is; where it returns an error
    (a key's daily audio spent), the decoding stops after that block, what was decoded is
    transcribed, and `PartlyDone` carries both."""
    stopped: list[VerbatimError] = []
    blocks = metered(pcm_blocks(audio, settings.max_audio_seconds), on_decoded, stopped)
    heard = transcribe_blocks(model, blocks, options, settings, on_progress, expected_seconds,
                              on_segment, on_speech)
    if stopped:
        raise PartlyDone(stopped[0], heard)
    return heard


def transcribe_blocks(
    model: WhisperModel,
    blocks: Iterable[np.ndarray],
    options: JobOptions,
    settings: Settings,
    on_progress: ProgressCallback,
    expected_seconds: float | None = None,
    on_segment: SegmentCallback | None = None,
    on_speech: SpeechCallback | None = None,
) -> Transcript:
    """Run the model over a recording's samples (int16 `blocks`, 16 kHz mono) window by window
    (`worker/windows.py`), reporting progress as segments arrive against `expected_seconds`
    (the probed duration), and each segment to `on_segment` as soon as it is decoded, on the
    recording's clock.

    Windows where VAD hears no speech are skipped, VAD on or off. The first window's language
    (detected among the job's candidates unless it names one) is the whole recording's; in the
    code-switching mode every window, and every run of one language in it, is detected and
    decoded on its own. Each window after the first is prompted with the text before it in
    the same language, as faster-whisper's own `condition_on_previous_text` would.
    `on_speech` is given each window's speech as voice-activity detection found it (the
    speaker embedder's input)."""
    job = _Job(model, options, settings)
    job.on_speech = on_speech
    report = _monotonic(_throttled(on_progress, settings.progress_interval_seconds))
    end = 0.0
    for window in windows(blocks, *job.cut(), find_speech=speech_regions):
        end = window.end_seconds
        total = max(expected_seconds or 0.0, end)
        for segment in job.hear(window):
            if on_segment is not None:
                on_segment(segment)
            report(min(segment.end / total, 1.0) if total else 1.0)
    return job.transcript(end)


def metered(blocks: Iterator[np.ndarray], on_decoded: DecodedCallback | None,
            stopped: list[VerbatimError]) -> Iterator[np.ndarray]:
    """`blocks`, each told to `on_decoded` as it is decoded; the last is the one it refused
    (its error put in `stopped`)."""
    decoded = 0
    for block in blocks:
        decoded += block.size
        error = on_decoded(decoded / SAMPLE_RATE) if on_decoded is not None else None
        yield block
        if error is not None:
            stopped.append(error)
            return


def transcribe_window(
    model: WhisperModel, window: Window, options: JobOptions, settings: Settings,
    detection: Detection | None, on_segment: SegmentCallback,
) -> tuple[list[Segment], dict[str, float], list[Sound] | None]:
    """Decode one window of a recording spread over workers (`worker/spread.py`), in the
    recording's language `detection` (None: the code-switching mode, or a fixed language), as
    `transcribe` decodes it but for the prompt from the window before, which runs elsewhere;
    its segments on the recording's clock, (code-switching) the languages it heard, and the
    sounds heard where the job asks for them (else None)."""
    job = _Job(model, options, settings)
    job.detection = detection
    for segment in job.hear(window):
        on_segment(segment)
    return job.segments, job.heard, job.sounds


def first_detection(
    model: WhisperModel, window: Window, options: JobOptions, settings: Settings
) -> Detection | None:
    """The recording's language as `transcribe` finds it, on `window`, the first with speech;
    None where the job names one, runs in the code-switching mode, or the window is silent."""
    job = _Job(model, options, settings)
    if options.fixed_language is not None or job.multilingual or silent(window.samples):
        return None
    if not (speech := speech_regions(window.samples)):
        return None
    return job._detect(window.samples, speech)


def assemble(
    segments: list[Segment], detection: Detection | None, heard: dict[str, float],
    options: JobOptions, settings: Settings, duration: float,
    sounds: list[Sound] | None = None,
) -> Transcript:
    """The transcript of a recording's segments (in order, numbered), the language detected on
    it, in the code-switching mode the languages heard weighted by speech, and the sounds
    heard besides speech where the job asks for them."""
    if multilingual(options, settings) and heard:
        detection = ranked(heard, options.candidates)
    languages = list(dict.fromkeys(s.language for s in segments if s.language))
    main = _main_language(segments) or options.fixed_language
    return Transcript(
        language=main or (detection.language if detection else None),
        language_probability=_probability(detection, main),
        languages=languages,
        language_alternatives=detection.alternatives() if detection else [],
        duration=duration,
        text="".join(s.text for s in segments).strip(),
        segments=segments,
        sounds=joined(sounds) if sounds is not None else None,
    )


class _Job:
    """One recording's decoding: its arguments, the languages heard, the segments so far."""

    def __init__(self, model: WhisperModel, options: JobOptions, settings: Settings) -> None:
        self.model, self.options, self.settings = model, options, settings
        self.kwargs = whisper_kwargs(options, settings)
        self.decoder = model.transcribe
        self.batched = (size := batch_size(options, settings)) > 1
        if self.batched:
            self.decoder = partial(BatchedInferencePipeline(model).transcribe, batch_size=size)
        self.multilingual = multilingual(options, settings)
        self.detection: Detection | None = None
        self.heard: dict[str, float] = {}  # multilingual: language -> speech-weighted probability
        self.segments: list[Segment] = []
        # What the sound classifier heard, where the job asks (issue 25); else None.
        self.sounds: list[Sound] | None = [] if sounds_on(options, settings) else None
        self.on_speech: SpeechCallback | None = None

    def cut(self) -> tuple[float, float]:
        return window_lengths(self.options, self.settings)

    def parts(self, window: Window, speech: Regions) -> list[tuple[Window, str]]:
        """The window's stretches, each with the language to decode it in."""
        if (fixed := self.options.fixed_language) is not None:
            return [(window, fixed)]
        if not self.multilingual:
            if self.detection is None:
                self.detection = self._detect(window.samples, speech)
            return [(window, self.detection.language)]
        found = self._detect(window.samples, speech)
        return split_by_language(window, speech, self._region_languages(window, speech, found))

    def decode(self, part: Window, language: str, speech: Regions, music: Regions,
               again: bool = True, chunks: list[dict[str, int]] | None = None
               ) -> Iterator[Segment]:
        """Decode one stretch in `language`: the segments kept, on the recording's clock, as
        the model produces them (so progress moves within a window). Over `music` (sure music,
        no speech heard), one sign of a failed decoding drops a segment. Where `again`, speech
        the model passed over is decoded alone, its segments in their place (`_missed`).
        `chunks`, where given, is the speech `vad_filter` keeps of `part` (`decoded_speech`)."""
        kwargs = {**self.kwargs, "language": language, **self._prompt(language)}
        if not again:  # decoded alone, its last frames would be read as its text again
            kwargs["condition_on_previous_text"] = False
        if sum(b - a for a, b in speech) < SPARSE_SPEECH * part.samples.size:
            kwargs.setdefault("temperature", 0.0)
        found = self._decoded(to_float(part.samples), kwargs, chunks)
        heard = 0  # samples of `part` up to the end of the last segment the model returned
        for raw in found:
            if again:
                yield from self._missed(part, language, speech, music, heard,
                                        int(raw.start * SAMPLE_RATE))
            heard = max(heard, int(raw.end * SAMPLE_RATE))
            if not is_speech(raw, speech) or (
                    over_music(raw.start, raw.end, music) and doubtful(raw)):
                continue
            segment = _segment(raw, len(self.segments), part, self._last_end(), language)
            segment = in_script(segment, self.options.script)
            self.segments.append(segment)
            yield segment
        if again:
            yield from self._missed(part, language, speech, music, heard, part.samples.size)

    def _decoded(self, audio: np.ndarray, kwargs: dict[str, Any],
                 chunks: list[dict[str, int]] | None) -> Iterable[FWSegment]:
        """The model's segments of `audio`, timed on it. Given its `chunks`, faster-whisper's
        `vad_filter` is done here as it does it (the chunks run together, the times put back),
        so it need not run the VAD model over the audio again."""
        if chunks is None or not kwargs["vad_filter"] or self.batched:
            return self.decoder(audio, **kwargs)[0]
        kept = np.concatenate(collect_chunks(audio, chunks)[0])
        found, _ = self.decoder(kept, **{**kwargs, "vad_filter": False})
        return restore_speech_timestamps(found, chunks, SAMPLE_RATE) if chunks else found

    def _missed(self, part: Window, language: str, speech: Regions, music: Regions,
                start: int, end: int) -> Iterator[Segment]:
        """The segments of the speech between samples `start` and `end` of `part`, where the
        model returned none, decoded alone where there are `MISSED_SPEECH` seconds of it: the
        same options, language and prompt, its segments through the same filters."""
        least = MISSED_SPEECH * SAMPLE_RATE
        missed = [(max(a, start), min(b, end)) for a, b in speech if a < end and b > start]
        # The rest of a region that a segment covers in part is missed where it is long alone.
        missed = [(a, b) for a, b in missed if (a, b) in speech or b - a >= least]
        if sum(b - a for a, b in missed) < least:
            return
        gap = Window(part.index, part.start + missed[0][0],
                     part.samples[missed[0][0]:missed[-1][1]])
        yield from self.decode(gap, language, within(speech, gap, part),
                               within(music, gap, part), again=False)

    def hear(self, window: Window) -> Iterator[Segment]:
        """The window's segments as decoded; none where it is silent or VAD hears no speech
        (Whisper would make words up). Where the job asks for sounds, the window's are noted,
        and segments over music are held to more (`decode`)."""
        if silent(window.samples):
            return
        probabilities = activity(window.samples)
        speech, music = regions_of(probabilities, window.samples.size), []
        if self.sounds is not None:
            scores = classify(window.samples)
            self.sounds += merge(patch_labels(scores), window.start_seconds, window.end_seconds)
            music = music_only(scores)
        if not speech:
            return
        if self.on_speech is not None:
            self.on_speech(window, speech)
        for part, language in self.parts(window, speech):
            whole = part.samples.size == window.samples.size  # else its own VAD pass
            chunks = decoded_speech(probabilities, part.samples.size) if whole else None
            yield from self.decode(part, language, within(speech, part, window),
                                   within(music, part, window), chunks=chunks)

    def transcript(self, duration: float) -> Transcript:
        return assemble(self.segments, self.detection, self.heard, self.options, self.settings,
                        duration, self.sounds)

    def _detect(self, samples: np.ndarray, speech: Regions) -> Detection:
        if not self.model.model.is_multilingual:  # an English-only model (`base.en`)
            return ranked({"en": 1.0}, [])
        heard = np.concatenate([samples[a:b] for a, b in speech])
        return detect(self.model, to_float(heard), self.options.candidates)

    def _region_languages(self, window: Window, speech: Regions, found: Detection) -> list[str]:
        """Each speech region's language: its own where it is long enough to tell and
        detection is sure of it, else that of the region before it (the window's at first)."""
        if len(speech) == 1:
            self._note(found, speech[0])
            return [found.language]
        languages: list[str] = []
        for a, b in speech:
            language, heard = (languages[-1] if languages else found.language), found
            if b - a >= REGION_SECONDS * SAMPLE_RATE:
                own = self._detect(window.samples, [(a, b)])
                if own.probability >= SWITCH_PROBABILITY:
                    language, heard = own.language, own
            self._note(heard, (a, b))
            languages.append(language)
        return languages

    def _note(self, detection: Detection, region: tuple[int, int]) -> None:
        """Count what detection heard in a region, weighted by its length, towards the
        languages the job reports."""
        seconds = (region[1] - region[0]) / SAMPLE_RATE
        for choice in detection.ranked:
            self.heard[choice.language] = (
                self.heard.get(choice.language, 0.0) + choice.probability * seconds)

    def _prompt(self, language: str) -> dict[str, str]:
        """The text so far in this language, where the job sets no prompt of its own and
        decoding is sequential (a German window prompted with English would stay English)."""
        if self.options.initial_prompt is not None or self.batched:
            return {}
        run: list[Segment] = []
        for segment in reversed(self.segments):
            if segment.language != language:
                break
            run.insert(0, segment)
        return {"initial_prompt": _previous_text(run)} if run else {}

    def _last_end(self) -> float:
        return self.segments[-1].end if self.segments else 0.0


def window_lengths(options: JobOptions, settings: Settings) -> tuple[float, float]:
    """The longest window of the job's recording and the stretch before its end searched for
    a pause to cut at (`worker/windows.py`)."""
    if multilingual(options, settings):
        longest = settings.multilingual_window_seconds
        return longest, longest / 3
    return settings.window_seconds, settings.window_search_seconds


def sounds_on(options: JobOptions, settings: Settings) -> bool:
    """Whether the job's transcript tags sounds (the job's choice, else the server's)."""
    return settings.sounds if options.sounds is None else options.sounds


def multilingual(options: JobOptions, settings: Settings) -> bool:
    """Whether the job runs in the code-switching mode (never when it names one language)."""
    chosen = settings.multilingual if options.multilingual is None else options.multilingual
    return chosen and options.fixed_language is None


def _main_language(segments: list[Segment]) -> str | None:
    """The language of the most transcribed time."""
    spoken: dict[str, float] = {}
    for s in segments:
        if s.language:
            spoken[s.language] = spoken.get(s.language, 0.0) + s.end - s.start
    return max(spoken, key=spoken.__getitem__) if spoken else None


def _probability(detection: Detection | None, language: str | None) -> float | None:
    if detection is None:
        return None
    return next((c.probability for c in detection.ranked if c.language == language),
                detection.probability)


def _previous_text(segments: list[Segment]) -> str:
    """The end of the text so far: faster-whisper keeps only the last 223 prompt tokens."""
    return "".join(s.text for s in segments[-PROMPT_SEGMENTS:]).strip()


def _segment(
    segment: FWSegment, number: int, window: Window, after: float, language: str
) -> Segment:
    """The segment on the recording's clock (it came from `window`), numbered from 0, its
    times inside the window and never before `after` (the previous segment's end)."""
    offset, limit = window.start_seconds, window.end_seconds
    floor = max(offset, after)

    def at(seconds: float) -> float:
        placed = min(max(offset + seconds, floor), limit)
        return round(placed, 3) if offset else placed

    start = at(segment.start)
    end = max(at(segment.end), start)
    words = None
    if segment.words is not None:
        words = _words([(at(w.start), at(w.end), w) for w in segment.words], start, end)
    return Segment(
        id=number,
        start=start,
        end=end,
        text=segment.text,
        avg_logprob=segment.avg_logprob,
        no_speech_prob=segment.no_speech_prob,
        words=words,
        language=language,
    )


def _words(timed: list[tuple[float, float, FWWord]], start: float, end: float) -> list[Word]:
    """The words inside their segment's [start, end], none starting before the one before."""
    words: list[Word] = []
    for begin, finish, w in timed:
        begin = min(max(begin, words[-1].end if words else start), end)
        words.append(Word(start=begin, end=min(max(finish, begin), end), word=w.word,
                          probability=w.probability))
    return words


def _monotonic(callback: ProgressCallback) -> ProgressCallback:
    """Never report less than before (a later window may start before an earlier one's end
    was estimated)."""
    best = 0.0

    def report(fraction: float) -> None:
        nonlocal best
        if fraction >= best:
            best = fraction
            callback(fraction)

    return report


def _throttled(callback: ProgressCallback, interval: float) -> ProgressCallback:
    """Pass progress on at most once per `interval` seconds (always when it reaches 1)."""
    last = float("-inf")

    def report(fraction: float) -> None:
        nonlocal last
        now = time.monotonic()
        if fraction >= 1.0 or now - last >= interval:
            last = now
            callback(fraction)

    return report
