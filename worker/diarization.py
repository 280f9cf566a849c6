"""Who said what (issue 21): a job's transcription with speaker labels, as `diarize` asks.

`channels`: a call recorded with each party on a channel of its own. The channels are decoded
one after another as one recording (`worker/channel_join.py`), each on its own speech, and the
segments taken back to their channels and merged on the recording's clock, each labelled with
its channel (`S1` the first, named by `channel_names`). Crosstalk heard on both channels stays
in both. Word timings are on, as every diarized job has them: a channel's speech is decoded run
together, the other party's turns left out, so a segment can hold words from before and after
one of them, and it is cut where its words pause. The language is detected once for the call,
as for any recording (the job's `language` skips it); a call whose parties speak different
languages wants the code-switching mode (`multilingual`), where each window and each run of one
language in it is detected on its own. A call long enough to be spread over workers
(`worker/spread.py`) is not joined: it is cut into windows channel by channel, its language
found on its first window with speech, and merged the same way.

`voices`: one mixed recording. It is transcribed with word timings, its speech embedded piece
by piece as each window's speech is found, and the pieces clustered (`worker/voices.py`); each
word takes its piece's speaker, and a segment in which the speaker changes is cut at that word
(`shared/turns.py`).

A job without `diarize` is the plain transcription (`worker/transcriber.py`), unchanged.
"""

from __future__ import annotations

from faster_whisper import WhisperModel

from shared.config import Settings
from shared.errors import NotMultichannel
from shared.media.opening import MediaSource
from shared.media.probe import probe_channels
from shared.schemas import MAX_CHANNELS, JobOptions, Segment, Transcript
from shared.state.voices import VoiceStore, job_scope, known_names
from shared.turns import label, renumbered, speakers_of, split_at_changes, split_at_pauses
from worker import transcriber, voices
from worker.channel_join import ChannelStream
from worker.job_state import job_store
from worker.sounds import joined
from worker.speech import Regions, Spans, spans, to_speech_edges
from worker.transcriber import (
    DecodedCallback,
    PartlyDone,
    ProgressCallback,
    SegmentCallback,
)
from worker.voices import Piece
from worker.windows import Window

# Words of one channel at least this far apart are in two segments (`split_at_pauses`): the
# other party's turn can lie between them. faster-whisper runs a channel's speech together
# wherever it pauses for 2 s or more (1.2 s, less its padding).
CHANNEL_PAUSE_SECONDS = 1.0


def mode(options: JobOptions, settings: Settings) -> str:
    """The job's diarization: its own choice, else the server's default."""
    return options.diarize or settings.diarize


def transcribe(
    model: WhisperModel, audio: MediaSource, options: JobOptions, settings: Settings,
    on_progress: ProgressCallback, expected_seconds: float | None = None,
    on_segment: SegmentCallback | None = None, on_decoded: DecodedCallback | None = None,
    owner: str | None = None, job_id: str | None = None,
) -> Transcript:
    """`worker.transcriber.transcribe`, with speaker labels where the job is diarized (named
    after the voices `owner`'s key enrolled, or job `job_id`'s request gave, where the job
    asks)."""
    chosen = mode(options, settings)
    if chosen == "channels":
        return by_channel(model, audio, options, settings, on_progress, expected_seconds,
                          on_segment, on_decoded)
    if chosen == "voices":
        return by_voice(model, audio, options, settings, on_progress, expected_seconds,
                        on_segment, on_decoded, owner, job_id)
    return transcriber.transcribe(model, audio, options, settings, on_progress,
                                  expected_seconds, on_segment, on_decoded)


def by_channel(
    model: WhisperModel, audio: MediaSource, options: JobOptions, settings: Settings,
    on_progress: ProgressCallback, expected_seconds: float | None,
    on_segment: SegmentCallback | None, on_decoded: DecodedCallback | None,
) -> Transcript:
    """The channels transcribed one after another in one stream (`worker/channel_join.py`),
    taken back apart, merged on the recording's clock and labelled.

    The key's daily audio is charged once, for the first channel's seconds; where its day
    runs out, what was decoded is kept (`PartlyDone`). Progress counts every channel's
    seconds. Segments are published once merged, in time order, so that their numbers are the
    transcript's."""
    count = probe_channels(audio)
    if count < 2:
        raise NotMultichannel("diarize=channels needs a recording with a channel per speaker; "
                              "this one has one channel.")
    stream = ChannelStream(audio, min(count, MAX_CHANNELS), settings.max_audio_seconds,
                           on_decoded)
    speech: Spans = []

    def heard_speech(window: Window, regions: Regions) -> None:
        speech.extend(spans(window, regions))

    timed = options.model_copy(update={"word_timestamps": True})
    heard = transcriber.transcribe_blocks(
        model, stream.blocks(), timed, settings, on_progress,
        stream.expected(expected_seconds), on_speech=heard_speech)
    parts = stream.apart(heard, speech)
    transcript = merged([one.model_copy(update={
        "segments": to_speech_edges(_at_pauses(one.segments), spoken)})
        for one, spoken in parts], options)
    if heard.sounds is not None:  # a sound heard on any channel is heard on the call
        transcript = transcript.model_copy(update={
            "sounds": joined([s for one, _ in parts for s in one.sounds or []])})
    if stream.stopped:  # the key's day ran out on the first channel: keep what it has
        raise PartlyDone(stream.stopped[0], transcript)
    for segment in transcript.segments:
        if on_segment is not None:
            on_segment(segment)
    return transcript


def merged(channels: list[Transcript], options: JobOptions) -> Transcript:
    """The channels' transcripts as one: segments and words labelled with their channel's
    speaker, in order of start time, renumbered; the words kept only where the job asked."""
    names = options.names_of_channels
    segments: list[Segment] = []
    for channel, heard in enumerate(channels):
        who = label(channel)
        for segment in _at_pauses(heard.segments):
            words = None
            if options.word_timestamps and segment.words is not None:
                words = [w.model_copy(update={"speaker": who}) for w in segment.words]
            segments.append(segment.model_copy(update={"speaker": who, "words": words}))
    ordered = renumbered(sorted(segments, key=lambda s: (s.start, s.end)))
    first = channels[0]
    return first.model_copy(update={
        "duration": max(t.duration for t in channels),
        "text": " ".join(s.text.strip() for s in ordered),
        "segments": ordered,
        "speakers": speakers_of(
            ordered, {label(i): n for i, n in enumerate(names)},
            {label(i): i for i in range(len(channels))}),
        "languages": list(dict.fromkeys(lang for t in channels for lang in t.languages)),
    })


def _at_pauses(segments: list[Segment]) -> list[Segment]:
    return [p for s in segments for p in split_at_pauses(s, CHANNEL_PAUSE_SECONDS)]


def by_voice(
    model: WhisperModel, audio: MediaSource, options: JobOptions, settings: Settings,
    on_progress: ProgressCallback, expected_seconds: float | None,
    on_segment: SegmentCallback | None, on_decoded: DecodedCallback | None,
    owner: str | None = None, job_id: str | None = None,
) -> Transcript:
    """The recording transcribed with word timings, its speech embedded window by window on
    the speech regions the transcription found, then clustered, each word labelled with its
    piece's speaker; segments published once labelled."""
    timed = options.model_copy(update={"word_timestamps": True})
    embedder, found = voices.get_embedder(), list[Piece]()

    def embed(window: Window, speech: Regions) -> None:
        found.extend(voices.pieces(window, embedder, speech))

    try:
        heard = transcriber.transcribe(model, audio, timed, settings, on_progress,
                                       expected_seconds, None, on_decoded, on_speech=embed)
    except PartlyDone as exc:  # the key's day ran out: what was decoded, unlabelled
        raise PartlyDone(exc.error, exc.transcript.model_copy(update={"speakers": []})
                         ) from None
    transcript = by_pieces(heard, found, options, settings, owner, job_id)
    for segment in transcript.segments:
        if on_segment is not None:
            on_segment(segment)
    return transcript


def by_pieces(heard: Transcript, found: list[Piece], options: JobOptions, settings: Settings,
              owner: str | None, job_id: str | None = None) -> Transcript:
    """The transcript labelled by one clustering of all the recording's pieces of speech (a
    spread recording's, gathered from its windows, too); speakers whose voice matches one the
    job names (`known_speakers`: `owner`'s key's voices, and those its request gave) take its
    name."""
    numbers = voices.cluster(found, options.speakers, options.min_speakers,
                             options.max_speakers)
    names: dict[int, str] = {}
    if options.known_speakers is not None:
        store, wanted = VoiceStore(job_store().redis), known_names(options.known_speakers)
        known = store.embeddings(owner, wanted)
        if job_id is not None:
            known |= store.embeddings(job_scope(job_id), wanted)
        names = voices.named(found, numbers, known, settings.speaker_match)
    return labelled(heard, found, numbers, options.word_timestamps,
                    {label(n): name for n, name in names.items()})


def labelled(heard: Transcript, found: list[Piece], numbers: list[int], keep_words: bool,
             names: dict[str, str] | None = None) -> Transcript:
    """The transcript with each word labelled as the piece it falls in (else the nearest),
    segments cut where the speaker changes and renumbered; words kept where asked."""
    segments: list[Segment] = []
    for segment in heard.segments:
        words = [w.model_copy(update={"speaker": _nearest(found, numbers, w.start, w.end)})
                 for w in segment.words or []]
        if not words:
            who = _nearest(found, numbers, segment.start, segment.end)
            segments.append(segment.model_copy(update={"speaker": who}))
            continue
        segments.extend(split_at_changes(segment.model_copy(update={"words": words})))
    segments = to_speech_edges(segments, voices.speech_of(found))
    if not keep_words:
        segments = [s.model_copy(update={"words": None}) for s in segments]
    ordered = renumbered(segments)
    return heard.model_copy(update={"segments": ordered,
                                    "speakers": speakers_of(ordered, names)})


def _nearest(found: list[Piece], numbers: list[int], start: float, end: float) -> str | None:
    """The speaker of the piece holding the middle of [start, end], else of the closest."""
    if not found:
        return None
    middle = (start + end) / 2

    def distance(i: int) -> float:
        return max(found[i].start - middle, middle - found[i].end, 0.0)

    return label(numbers[min(range(len(found)), key=distance)])
