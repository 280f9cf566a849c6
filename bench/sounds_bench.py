"""The sound classifier (issue 25): how well it labels a small labelled set, what it adds to a
job's worker time, and whether music with VAD off still decodes to words.

The set, each clip with the labels a listener gives it (none: speech or a sound the map does
not name), scored per label second by second (precision, recall):

- speech: the seven recordings of tests/data (public domain, CC BY 4.0), no label;
- music: a tune of tests/synthetic.py; the first minute of Frozen Bubble's three music tracks
  (Debian's `frozen-bubble-data`, GPL-2);
- applause: Frozen Bubble's applause (the same package, 2 s); clapping of tests/synthetic.py
  (150 pairs of hands, 8 s: "applause (generated)"), a row apart from the real recordings';
- OpenSFX (Debian's `openttd-opensfx`, CC BY 3.0 / CC0, read from its sound catalogue): the
  applauding and cheering audience ("applause", "cheering"), the explosion ("explosion"), and
  sheep, cow, horse, birds, wind, a jackhammer and a helicopter, none of which the map names.

Clips of a Debian package not installed are left out (the run says so):
`apt-get install frozen-bubble-data openttd-opensfx`.

Time: each file of the timed set transcribed (real base model, this process, one thread per
job as a worker's) with `sounds` off and on, interleaved, `--repeat` times each (the fastest
and the median shown: on a shared machine the fastest is the one least disturbed); the
classifier's own time per audio minute is measured apart, as a share of the job's time.
Lyrics: each music clip decoded with `vad_filter=false`, `sounds` off and on: alone and after
speech (its words counted), and under JFK's speech at the voice's loudness (the error rate of
JFK's words).

    PYTHONPATH=. .venv/bin/python bench/sounds_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support import DATA, write_audio  # noqa: E402
from synthetic import applause, melody  # noqa: E402

from shared.config import Settings  # noqa: E402
from shared.schemas import JobOptions, Segment, Sound  # noqa: E402
from worker.audio import SAMPLE_RATE, pcm_blocks  # noqa: E402
from worker.model import get_model  # noqa: E402
from worker.sounds import GROUPINGS, class_names, classify, joined, merge, patch_labels  # noqa: E402
from worker.transcriber import transcribe  # noqa: E402

FROZEN = Path("/usr/share/games/frozen-bubble/snd")
OPENSFX = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")
# OpenSFX catalogue entries: index -> (name, labels).
SFX = {29: ("audience", {"applause", "cheering"}), 18: ("explosion", {"explosion"}),
       36: ("sheep", set()), 37: ("cow", set()), 38: ("horse", set()), 66: ("bird", set()),
       57: ("heavy wind", set()), 33: ("jackhammer", set()), 24: ("helicopter", set())}
# A clip named so is tallied in rows of its own ("applause (generated)"): a generator made for
# the model to hear must not lift the real recordings' figures.
GENERATED = "(generated)"
SPEECH = ["jfk.flac", "1089-134686-0000.flac", "1089-134686-0001.flac", "LJ001-0001.flac",
          "LJ001-0003.flac", "LJ001-0005.flac", "LJ001-0007.flac"]


def samples(path: Path, seconds: float = 3600) -> np.ndarray:
    decoded = np.concatenate(list(pcm_blocks(path, 3600)))
    return decoded[:int(seconds * SAMPLE_RATE)]


def opensfx(folder: Path) -> dict[str, tuple[Path, set[str]]]:
    """The catalogue's clips named in SFX, written out as WAV files (its entries are a
    length-prefixed name, then a RIFF file)."""
    data = OPENSFX.read_bytes()
    clips = {}
    for index, (name, labels) in SFX.items():
        offset, size = struct.unpack_from("<II", data, index * 8)
        offset &= 0x7FFFFFFF
        skip = 1 + data[offset]
        path = folder / f"opensfx-{index}.wav"
        path.write_bytes(data[offset + skip:offset + size])
        clips[f"opensfx {name}"] = (path, labels)
    return clips


def labelled_set(folder: Path) -> dict[str, tuple[Path, set[str]]]:
    clips = {f"speech {name}": (DATA / name, set[str]()) for name in SPEECH}
    clips["tune (synthetic)"] = (write_audio(folder / "tune.flac", melody(30.0)), {"music"})
    clips["applause (generated)"] = (write_audio(folder / "clapping.flac", applause(8.0)),
                                     {"applause"})
    if FROZEN.is_dir():
        for track in ("introzik", "frozen-mainzik-1p", "frozen-mainzik-2p"):
            path = write_audio(folder / f"{track}.flac", samples(FROZEN / f"{track}.ogg", 60))
            clips[f"frozen-bubble {track}"] = (path, {"music"})
        clips["frozen-bubble applause"] = (FROZEN / "applause.ogg", {"applause"})
    else:
        print("frozen-bubble-data is not installed: its music is left out")
    if OPENSFX.is_file():
        clips.update(opensfx(folder))
    else:
        print("openttd-opensfx is not installed: its sounds are left out")
    return clips


def heard(scores: np.ndarray, seconds: float, grouping: str) -> list[Sound]:
    return joined(merge(patch_labels(scores, grouping), 0.0, seconds))


def top_classes(scores: np.ndarray, count: int = 3) -> str:
    """The clip's best AudioSet classes by their mean score (what the model hears)."""
    mean = scores.mean(axis=0)
    return ", ".join(f"{class_names()[k]} {mean[k]:.2f}" for k in np.argsort(-mean)[:count])


def score(clips: dict[str, tuple[Path, set[str]]], grouping: str, show: bool) -> None:
    """Per label, in seconds over every clip: labelled and found (true positive), found only
    (false positive), labelled only (false negative). A clip's labels cover all of it. A
    label's score is its classes' as `grouping` makes it (worker/sounds.py's GROUPINGS)."""
    counts: dict[str, list[float]] = {}
    if show:
        print(f"\n{'clip':34} {'s':>6}  labels -> found (grouping {grouping}); top classes")
    for name, (path, truth) in clips.items():
        audio = samples(path)
        seconds, scores = audio.size / SAMPLE_RATE, classify(audio)
        sounds = heard(scores, seconds, grouping)
        if show:
            print(f"{name:34} {seconds:6.1f}  {sorted(truth) or '-'} -> "
                  f"{[(s.label, s.start, s.end) for s in sounds] or '-'}; {top_classes(scores)}")
        found: dict[str, float] = {}
        for sound in sounds:
            found[sound.label] = found.get(sound.label, 0.0) + sound.end - sound.start
        suffix = f" {GENERATED}" if name.endswith(GENERATED) else ""
        for label in truth | set(found):
            tally = counts.setdefault(label + suffix, [0.0, 0.0, 0.0])
            if label in truth:
                tally[0] += found.get(label, 0.0)
                tally[2] += seconds - found.get(label, 0.0)
            else:
                tally[1] += found[label]
    print(f"\ngrouping {grouping}:\n{'label':20} {'precision':>9} {'recall':>7} "
          f"{'s labelled':>10} {'s found':>8}")
    for label, (tp, fp, fn) in sorted(counts.items()):
        precision = f"{tp / (tp + fp):.2f}" if tp + fp else "-"
        recall = f"{tp / (tp + fn):.2f}" if tp + fn else "-"
        print(f"{label:20} {precision:>9} {recall:>7} {tp + fn:10.1f} {tp + fp:8.1f}")


def timed(path: Path, settings: Settings, repeat: int) -> dict[bool, list[float]]:
    """Seconds to transcribe `path` with sounds off and on, the two interleaved `repeat` times
    so that a load that comes and goes on a shared machine weighs on both alike."""
    model = get_model(settings)
    runs: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeat):
        for on in (False, True):
            start = time.perf_counter()
            transcribe(model, path, JobOptions(sounds=on), settings, lambda _: None)
            runs[on].append(time.perf_counter() - start)
    return runs


def cost(folder: Path, repeat: int) -> None:
    """Worker time per audio minute with sounds off and on, and the classifier's alone."""
    settings = Settings(cpu_threads=1)
    speech = np.concatenate([samples(DATA / name) for name in SPEECH])
    files = {"speech (tests/data, 61 s)": write_audio(folder / "speech.flac", speech),
             "speech, tune, audience": write_audio(folder / "mix.flac", np.concatenate(
                 [samples(DATA / "jfk.flac"), melody(8.0), samples(DATA / "applause.flac")]))}
    timed(files["speech, tune, audience"], settings, 1)  # load both models first
    print(f"\n{'file':26} {'audio s':>7} {'off s min/med':>14} {'on s min/med':>13} "
          f"{'added min':>9}  {'classifier s/min, share of job':>30}")
    for name, path in files.items():
        audio = samples(path)
        minutes = audio.size / SAMPLE_RATE / 60
        runs = timed(path, settings, repeat)
        off, on = min(runs[False]), min(runs[True])
        alone = min(_classify_time(audio) for _ in range(repeat))
        print(f"{name:26} {minutes * 60:7.1f} {off:6.2f}/{statistics.median(runs[False]):<7.2f}"
              f" {on:6.2f}/{statistics.median(runs[True]):<6.2f} {(on - off) / off:9.1%}  "
              f"{alone / minutes:16.3f} s/min = {alone / off:5.1%}")


def _classify_time(audio: np.ndarray) -> float:
    start = time.perf_counter()
    classify(audio)
    return time.perf_counter() - start


def lyrics(clips: dict[str, tuple[Path, set[str]]], folder: Path) -> None:
    """Words over music with VAD off, sounds off and on: each music clip alone, after JFK's
    speech (words after the speech counted), and under it at the voice's loudness (JFK's
    words' error rate)."""
    settings = Settings(cpu_threads=1)
    model = get_model(settings)
    voice = samples(DATA / "jfk.flac")
    reference = "and so my fellow americans ask not what your country can do for you ask what "
    reference += "you can do for your country"

    def decoded(audio: np.ndarray, on: bool) -> list[Segment]:
        path = write_audio(folder / "lyrics.flac", audio)
        options = JobOptions(vad_filter=False, sounds=on, language="en")
        return transcribe(model, path, options, settings, lambda _: None).segments

    print(f"\n{'vad_filter=false; sounds off / on':34} {'alone: words':>12} "
          f"{'after speech: words':>19} {'under speech: WER':>17}")
    for name, (path, truth) in clips.items():
        if truth != {"music"}:
            continue
        music = samples(path, 30)
        alone, after, under = [], [], []
        loud = (music.astype(np.float32) * np.sqrt(
            np.mean(voice.astype(np.float32) ** 2) / np.mean(music.astype(np.float32) ** 2)))
        mixed = np.clip(voice + loud[:voice.size], -32767, 32767).astype(np.int16)
        for on in (False, True):
            alone.append(sum(len(s.text.split()) for s in decoded(music, on)))
            after.append(sum(len(s.text.split()) for s in decoded(
                np.concatenate([voice, music]), on) if s.start >= 11.0))
            text = " ".join(s.text for s in decoded(mixed, on)).lower()
            under.append(jiwer.wer(reference, " ".join(jiwer.RemovePunctuation()(text).split())))
        print(f"{name:34} {alone[0]:5d} / {alone[1]:<5d} {after[0]:9d} / {after[1]:<7d} "
              f"{under[0]:8.2f} / {under[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = labelled_set(folder)
        for k, grouping in enumerate(GROUPINGS):
            score(clips, grouping, show=k == 0)
        lyrics(clips, folder)
        cost(folder, args.repeat)


if __name__ == "__main__":
    main()
