"""Speaker turns in the canonical transcript (issue 21): segments cut where the speaker
changes, the job's list of speakers, and the names shown for their labels.

Pure functions, shared by the worker (which labels segments), the renderers (which show
the labels, or the names a download asks for, `S1=Ann,S2=Bob`) and the names saved with a job
(`shared/state/speaker_names.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from shared.schemas import Segment, Speaker, Transcript, Word


def label(index: int) -> str:
    """The label of the `index`-th speaker (from 0): `S1`, `S2`..."""
    return f"S{index + 1}"


def split_at_changes(segment: Segment) -> list[Segment]:
    """The segment cut at each word where the speaker changes, each piece labelled with its
    words' speaker; a segment without labelled words stays whole."""
    words = segment.words or []
    if not words or any(w.speaker is None for w in words):
        return [segment]
    runs = _runs(words, lambda before, word: before.speaker != word.speaker)
    if len(runs) == 1:
        return [segment.model_copy(update={"speaker": words[0].speaker})]
    return [piece.model_copy(update={"speaker": run[0].speaker})
            for piece, run in zip(_pieces(segment, runs), runs, strict=True)]


def split_at_pauses(segment: Segment, pause: float) -> list[Segment]:
    """The segment cut between words at least `pause` seconds apart. A channel of a call is
    decoded as its speech run together, so one segment can hold words from both sides of the
    other party's turn (`diarize=channels`); cut there, neither piece spans that turn."""
    words = segment.words or []
    runs = _runs(words, lambda before, word: word.start - before.end >= pause)
    return [segment] if len(runs) <= 1 else _pieces(segment, runs)


def _runs(words: list[Word], cut: Callable[[Word, Word], bool]) -> list[list[Word]]:
    """The words in runs, a new one started at each word `cut` says to (given the word
    before it)."""
    runs: list[list[Word]] = []
    for word in words:
        if runs and not cut(runs[-1][-1], word):
            runs[-1].append(word)
        else:
            runs.append([word])
    return runs


def _pieces(segment: Segment, runs: list[list[Word]]) -> list[Segment]:
    """The segment as one piece per run of its words, the first starting and the last ending
    where it does, each with its words' text."""
    pieces = []
    for i, run in enumerate(runs):
        text = "".join(w.word for w in run)
        if i == 0 and not text.startswith(" ") and segment.text.startswith(" "):
            text = " " + text
        pieces.append(segment.model_copy(update={
            "start": segment.start if i == 0 else run[0].start,
            "end": segment.end if i == len(runs) - 1 else run[-1].end,
            "text": text, "words": run,
        }))
    return pieces


def renumbered(segments: Iterable[Segment]) -> list[Segment]:
    """The segments numbered from 0 in their order."""
    return [s.model_copy(update={"id": i}) for i, s in enumerate(segments)]


def speakers_of(segments: list[Segment], names: dict[str, str] | None = None,
                channels: dict[str, int] | None = None) -> list[Speaker]:
    """Every labelled speaker in label order, with talk time and turns (runs of
    their segments in a row, in time order)."""
    found: dict[str, Speaker] = {}
    previous = None
    for segment in sorted(segments, key=lambda s: (s.start, s.id)):
        if (who := segment.speaker) is None:
            continue
        if who not in found:
            found[who] = Speaker(label=who, name=(names or {}).get(who), talk_seconds=0.0,
                                 turns=0, channel=(channels or {}).get(who))
        speaker = found[who]
        speaker.talk_seconds = round(speaker.talk_seconds + segment.end - segment.start, 3)
        if who != previous:
            speaker.turns += 1
        previous = who
    return sorted(found.values(), key=lambda s: (len(s.label), s.label))


def parse_renames(text: str | None) -> dict[str, str]:
    """`S1=Ann,S2=Bob` as {label: name}; raises ValueError on a malformed pair."""
    renames: dict[str, str] = {}
    for pair in (text or "").split(","):
        if not pair.strip():
            continue
        who, sep, name = pair.partition("=")
        if not sep or not who.strip() or not name.strip():
            raise ValueError(f"expected LABEL=NAME, got {pair.strip()!r}")
        renames[who.strip()] = name.strip()
    return renames


def display_names(transcript: Transcript, renames: dict[str, str] | None = None
                  ) -> dict[str, str]:
    """What to call each speaker in a download: the name asked for, else the speaker's own
    name (a channel's or an enrolled voice's), else the label."""
    shown = {s.label: s.name or s.label for s in transcript.speakers or []}
    for segment in transcript.segments:
        if segment.speaker is not None:
            shown.setdefault(segment.speaker, segment.speaker)
    return shown | {k: v for k, v in (renames or {}).items() if k in shown}


def with_names(speakers: list[Speaker], names: Mapping[str, str | None]) -> list[Speaker]:
    """The speakers named as `names` says, {label: name} (None clears a name: the label
    shows); the others, and every label, as they are."""
    return [s.model_copy(update={"name": names[s.label]}) if s.label in names else s
            for s in speakers]


def renamed(transcript: Transcript, renames: dict[str, str] | None) -> Transcript:
    """The transcript with speaker names as a download asks (labels unchanged)."""
    if not renames or not transcript.speakers:
        return transcript
    return transcript.model_copy(update={"speakers": with_names(transcript.speakers, renames)})
