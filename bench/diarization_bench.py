"""Diarization benchmark (issue 21): DER of `diarize=voices` on conversations assembled from
real readers, and of `diarize=channels` on the stereo call and on a long two-party call; the
speaker count found; and the worker time of each job with and without diarization.

Conversations are built as `tests/conversations.py` builds the tests' ones, from the
LibriSpeech readers (1089, 1221, 1272, 1995, 2412; CC BY 4.0) and the LJ Speech reader (public
domain) of `../shared/audio` (or `--audio`), and the two speakers of Debian's
`pocketsphinx-testdata` (BSD-2-Clause; `--sphinx`): a LibriVox reader of Sense and Sensibility
and a speaker calling playing cards, whose turns are short (1 to 3.5 s). 2 to 4 speakers, turns
of 1 to 17 s, some speakers coming back. DER is pyannote.metrics' `DiarizationErrorRate` with a
collar of 0.25 s on each side of every reference boundary (pyannote's `collar=0.5`, the total);
the reference turns are each utterance's span from its first to its last sample above
-40 dBFS. Times are the CPU seconds of this process (every thread) running the worker's own
functions, the model and the embedder loaded and one diarized job run before: the plain job
(no word timings, as a default job) against the diarized one, and with `--split` the job with
word timings alone between them. CPU time rather than wall time, because the machines this
runs on are shared: wall time there swings by a factor of two from one run to the next.

The long call (`call`, 3.5 min) is built as `tests/conversations.py` builds the tests' calls:
the LJ Speech reader on the left channel, LibriSpeech readers on the right, each channel
silent while the other speaks, every third change of speaker 0.8 s into the other's speech
(crosstalk); its reference turns are each utterance's speech on its channel. Its plain job is
the same file mixed to mono, without diarization. Its line also gives the word error rate of
the plain job against all the references in order, and of each channel against its own.

    .venv/bin/python bench/diarization_bench.py
    .venv/bin/python bench/diarization_bench.py --only c2a c3a --audio /path/to/shared/audio
    .venv/bin/python bench/diarization_bench.py --only call --repeat 2 [--rounds 2]
    .venv/bin/python bench/diarization_bench.py --split --sphinx /usr/share/pocketsphinx/test/data
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np
from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conversations import (  # noqa: E402
    AUSTEN,
    DATA,
    SPHINX,
    SPHINX_TWO,
    Turn,
    build,
    build_call,
)

from shared.config import Settings  # noqa: E402
from shared.schemas import JobOptions, Transcript  # noqa: E402
from worker.audio import pcm_blocks  # noqa: E402
from worker.diarization import transcribe  # noqa: E402
from worker.model import get_model  # noqa: E402
from worker.voices import get_embedder  # noqa: E402

LIB, LJ = "en_librispeech/", "en_ljspeech/"
# Files of pocketsphinx-testdata (`--sphinx`): the Sense and Sensibility reader and the
# speaker of the cards grammar.
SS, CARDS = "sphinx:" + AUSTEN, "sphinx:cards/"
CONVERSATIONS: dict[str, list[tuple[str, str]]] = {
    "c2a": [("1089", LIB + "1089-134686-0000.flac"), ("LJ", LJ + "LJ001-0001.flac"),
            ("1089", LIB + "1089-134686-0001.flac"), ("LJ", LJ + "LJ001-0003.flac")],
    "c2b": [("1221", LIB + "triton_1221-135766-0002.wav"), ("LJ", LJ + "LJ001-0010.flac"),
            ("1221", LIB + "triton_1221-135766-0001.wav"), ("LJ", LJ + "LJ001-0011.flac")],
    "c2c": [("1089", LIB + "1089-134691-0001.flac"), ("1221", LIB + "triton_1221-135766-0002.wav"),
            ("1089", LIB + "1089-134691-0000.flac"), ("1221", LIB + "triton_1221-135766-0001.wav")],
    "c3a": [("1089", LIB + "1089-134686-0000.flac"), ("LJ", LJ + "LJ001-0005.flac"),
            ("2412", LIB + "2412-153948-0000.flac"), ("1089", LIB + "1089-134686-0001.flac"),
            ("LJ", LJ + "LJ001-0007.flac")],
    "c3b": [("1995", LIB + "librispeech-1995-1837-0001.wav"), ("LJ", LJ + "LJ001-0012.flac"),
            ("1089", LIB + "1089-134691-0001.flac"), ("LJ", LJ + "LJ001-0013.flac"),
            ("1089", LIB + "1089-134691-0000.flac")],
    "c4a": [("1221", LIB + "triton_1221-135766-0002.wav"),
            ("1995", LIB + "librispeech-1995-1837-0001.wav"),
            ("LJ", LJ + "LJ001-0014.flac"), ("1272", LIB + "picovoice_1272-128104-0000.wav"),
            ("1221", LIB + "triton_1221-135766-0001.wav")],
    "c4b": [("1089", LIB + "1089-134686-0000.flac"),
            ("1272", LIB + "picovoice_1272-128104-0000.wav"),
            ("2412", LIB + "2412-153948-0000.flac"), ("LJ", LJ + "LJ001-0015.flac"),
            ("1089", LIB + "1089-134691-0001.flac")],
    "c2d": [(who, "sphinx:" + file) for who, file in SPHINX_TWO],
    "c3c": [("SS", SS + "0920.wav"), ("cards", CARDS + "005.wav"),
            ("LJ", LJ + "LJ001-0016.flac"), ("SS", SS + "0930.wav"),
            ("cards", CARDS + "004.wav"), ("LJ", LJ + "LJ001-0009.flac")],
    "c4c": [("SS", SS + "0870.wav"), ("1272", LIB + "picovoice_1272-128104-0000.wav"),
            ("cards", CARDS + "005.wav"), ("1995", LIB + "librispeech-1995-1837-0001.wav"),
            ("SS", SS + "0880.wav"), ("cards", CARDS + "002.wav")],
}  # fmt: skip
# The long call: (channel, file), the LJ Speech reader (channel 0) taking one or two
# utterances a turn, LibriSpeech's readers (channel 1) one; all of `--audio`.
CALL: list[tuple[int, str]] = [
    (1, "1089-134686-0000.flac"), (0, "LJ001-0001.flac"), (0, "LJ001-0002.flac"),
    (1, "1089-134686-0001.flac"), (0, "LJ001-0003.flac"), (0, "LJ001-0004.flac"),
    (1, "1089-134691-0000.flac"), (0, "LJ001-0005.flac"), (1, "1089-134691-0001.flac"),
    (0, "LJ001-0006.flac"), (0, "LJ001-0007.flac"), (1, "2412-153948-0000.flac"),
    (0, "LJ001-0008.flac"), (1, "librispeech-1995-1837-0001.wav"), (0, "LJ001-0009.flac"),
    (0, "LJ001-0010.flac"), (1, "picovoice_1272-128104-0000.wav"), (0, "LJ001-0011.flac"),
    (0, "LJ001-0012.flac"), (1, "triton_1221-135766-0002.wav"), (0, "LJ001-0013.flac"),
    (0, "LJ001-0014.flac"), (1, "triton_1221-135766-0001.wav"), (0, "LJ001-0015.flac"),
    (0, "LJ001-0016.flac"), (1, "triton_1089-134686-0001.wav"), (0, "LJ001-0017.flac"),
    (0, "LJ001-0018.flac"),
]  # fmt: skip


def annotation(turns: list[tuple[str, float, float]]) -> Annotation:
    found = Annotation()
    for who, start, end in turns:
        found[Segment(start, end)] = who
    return found


def hypothesis(transcript: Transcript) -> Annotation:
    return annotation([(s.speaker or "?", s.start, s.end) for s in transcript.segments])


def timed(path: Path, options: JobOptions, settings: Settings) -> tuple[Transcript, float]:
    model = get_model(settings)
    began = time.process_time()
    transcript = transcribe(model, path, options, settings, lambda _: None)
    return transcript, time.process_time() - began


def channel_reference(path: Path) -> list[tuple[str, float, float]]:
    """Each channel's speech span, from its first to its last sample above -40 dBFS."""
    turns = []
    for channel in (0, 1):
        samples = np.concatenate(list(pcm_blocks(path, 3600, channel)))
        loud = np.flatnonzero(np.abs(samples) > 327)
        turns.append((f"S{channel + 1}", loud[0] / 16000, (loud[-1] + 1) / 16000))
    return turns


def row(name: str, reference: Annotation, transcript: Transcript, times: list[float],
        metric: DiarizationErrorRate) -> bool:
    """Print a conversation's line: `times` are the CPU seconds of the plain job, (with
    `--split`) of the job with word timings alone, and of the diarized job."""
    parts = metric(reference, hypothesis(transcript), detailed=True)
    total = parts["total"] or 1.0
    found, truth = len(transcript.speakers or []), len(reference.labels())
    missed, alarm = parts["missed detection"] / total, parts["false alarm"] / total
    plain, diarized = times[0], times[-1]
    words = f"{times[1]:10.1f}" if len(times) == 3 else ""
    print(f"{name:6} {truth:4} {found:5} {100 * parts['diarization error rate']:6.1f} "
          f"{100 * missed:6.1f} {100 * alarm:6.1f} {100 * parts['confusion'] / total:6.1f} "
          f"{transcript.duration:6.1f} {plain:11.1f}{words} {diarized:10.1f} "
          f"{100 * (diarized / plain - 1):+6.0f}%", flush=True)
    return found == truth


def resolved(file: str, audio: Path, sphinx: Path) -> Path:
    """A conversation's file: under `sphinx` where it says `sphinx:`, else under `audio`."""
    return sphinx / file.removeprefix("sphinx:") if file.startswith("sphinx:") else audio / file


def runs(path: Path, diarize: str, settings: Settings, split: bool
         ) -> tuple[Transcript, list[float]]:
    """The plain job's CPU seconds, (`split`) the job with word timings alone's, and the
    diarized job's, with its transcript."""
    options = [JobOptions(), *([JobOptions(word_timestamps=True)] if split else []),
               JobOptions(diarize=diarize)]
    found = [timed(path, o, settings) for o in options]
    return found[-1][0], [seconds for _, seconds in found]


def wer(references: list[str], said: str) -> float:
    """Word error rate of `said` against the references run together, case and punctuation
    aside."""
    def norm(text: str) -> str:
        return " ".join(jiwer.RemovePunctuation()(text.lower().replace("-", " ")).split())

    return jiwer.wer(norm(" ".join(references)), norm(said))


def long_call(audio: Path, folder: Path, settings: Settings, split: bool, repeat: int,
              rounds: int) -> None:
    """The long two-party call's lines, `repeat` times: DER of `channels`, the CPU seconds of
    the plain job (the file mixed to mono) and of the channels job; then the word error rates
    of the last run's. The call is `CALL` said `rounds` times over."""
    files = [(channel, audio / (LJ if f.startswith("LJ") else LIB) / f)
             for channel, f in CALL * rounds]
    if missing := [str(f) for _, f in files if not f.exists()]:
        print(f"call: left out, missing {', '.join(missing)}", file=sys.stderr)
        return
    path = folder / "call.flac"
    truth = annotation([(t.speaker, t.start, t.end) for t in build_call(files, path)])
    options = [JobOptions(), *([JobOptions(word_timestamps=True)] if split else []),
               JobOptions(diarize="channels")]
    for _ in range(repeat):
        found = [timed(path, o, settings) for o in options]
        row("call", truth, found[-1][0], [seconds for _, seconds in found],
            DiarizationErrorRate(collar=0.5, skip_overlap=False))
    said = references(audio)
    plain, diarized = found[0][0], found[-1][0]
    heard = [" ".join(s.text for s in diarized.segments if s.speaker == f"S{channel + 1}")
             for channel in (0, 1)]
    rates = [wer([said[f] for c, f in files if c == channel], heard[channel])
             for channel in (0, 1)]
    print(f"call WER%: plain {100 * wer([said[f] for _, f in files], plain.text):.1f}, "
          f"channels S1 {100 * rates[0]:.1f}, S2 {100 * rates[1]:.1f}", flush=True)


def references(audio: Path) -> dict[Path, str]:
    """Each file's reference transcript, from the manifest of `audio`."""
    entries = json.loads((audio / "manifest.json").read_text())
    return {audio / entry["file"]: entry["reference"] or "" for entry in entries}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="conversations to run (and 'channels', 'call')")
    parser.add_argument("--audio", type=Path, default=ROOT.parent / "shared" / "audio",
                        help="the folder with en_librispeech/ and en_ljspeech/")
    parser.add_argument("--sphinx", type=Path, default=SPHINX,
                        help="pocketsphinx-testdata's folder (conversations using it are "
                             "left out where it is missing)")
    parser.add_argument("--split", action="store_true",
                        help="also time each job with word timings alone (words_cpu_s)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="times to run the long call's jobs (each a line)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="the long call's turns said this many times over (a longer call)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(device="cpu", data_dir=Path(folder))
        get_model(settings), get_embedder()
        # One diarized job before any timing: first calls (the embedder's session, librosa's
        # lazy imports) cost once per worker process, not per job.
        timed(DATA / "1089-134686-0000.flac", JobOptions(diarize="voices"), settings)
        voices_metric = DiarizationErrorRate(collar=0.5, skip_overlap=False)
        print("conv   spk  found   DER%  miss%    FA%  conf%  audio  plain_cpu_s"
              f"{'  words_cpu_s' if args.split else ''}  diar_cpu_s  added")
        right = total = 0
        for name, turns in CONVERSATIONS.items():
            if args.only and name not in args.only:
                continue
            files = [(who, resolved(f, args.audio, args.sphinx)) for who, f in turns]
            if missing := [str(f) for _, f in files if not f.exists()]:
                print(f"{name}: left out, missing {', '.join(missing)}", file=sys.stderr)
                continue
            path = Path(folder) / f"{name}.flac"
            reference: list[Turn] = build(files, path)
            transcript, times = runs(path, "voices", settings, args.split)
            truth = annotation([(t.speaker, t.start, t.end) for t in reference])
            right += row(name, truth, transcript, times, voices_metric)
            total += 1
        if total:
            print(f"voices overall DER {100 * abs(voices_metric):.1f}%, count right on "
                  f"{right}/{total} ({100 * right / total:.0f}%)")
        if not args.only or "channels" in args.only:
            stereo = DATA / "stereo_diarization.flac"
            channels_metric = DiarizationErrorRate(collar=0.5, skip_overlap=False)
            transcript, times = runs(stereo, "channels", settings, args.split)
            row("stereo", annotation(channel_reference(stereo)), transcript, times,
                channels_metric)
        if not args.only or "call" in args.only:
            long_call(args.audio, Path(folder), settings, args.split, args.repeat,
                      args.rounds)


if __name__ == "__main__":
    main()
