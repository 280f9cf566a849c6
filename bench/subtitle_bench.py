"""Subtitle rendering cost: one cue per segment against re-cueing with and without word timings.

Builds a transcript of `--hours` of speech (an English-like segment every 5 s, 14 words each,
with word timings, and a Japanese one every tenth segment), then times `render` of srt, vtt
(with `highlight_words`) and ass under no options and the `broadcast` preset, with the words
and with them stripped (proportional timing). Prints the median of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from shared.output.formatters import render
from shared.output.subtitles import SubtitleOptions
from shared.schemas import Segment, Transcript, Word

VOCABULARY = ("the of and to in is you that it he was for on are as with his they at be this "
              "from have or by one had not but what all were when we there can an your which "
              "their said if do will each about how up out them then she many some so these "
              "would other into has more her two like him see time could no make than first "
              "been its who now people my made over did down only way find use may water long "
              "little very after words called just where most know").split()
JAPANESE = ["今日", "は", "字幕", "の", "作り方", "を", "説明", "します", "。"]


def segment(index: int, rng: random.Random) -> Segment:
    start = index * 5.0
    words = JAPANESE if index % 10 == 9 else [rng.choice(VOCABULARY) for _ in range(14)]
    step = 4.6 / len(words)
    timed = [Word(word=(w if index % 10 == 9 else " " + w) + ("," if i == 6 else ""),
                  start=start + i * step, end=start + (i + 0.8) * step, probability=0.9)
             for i, w in enumerate(words)]
    return Segment(id=index, start=start, end=start + 4.6, text="".join(w.word for w in timed),
                   words=timed)


def transcript(hours: float) -> Transcript:
    rng = random.Random(14)
    segments = [segment(i, rng) for i in range(int(hours * 3600 / 5))]
    return Transcript(language="en", duration=hours * 3600, text="", segments=segments)


def timed(source: Transcript, fmt: str, options: SubtitleOptions | None, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        render(source, fmt, options)
        runs.append(time.perf_counter() - began)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with_words = transcript(args.hours)
    without = with_words.model_copy(update={"segments": [
        s.model_copy(update={"words": None}) for s in with_words.segments]})
    words = sum(len(s.words or []) for s in with_words.segments)
    print(f"transcript: {args.hours:g} h, {len(with_words.segments)} segments, {words} words; "
          f"median of {args.repeat} runs")
    print(f"{'format':<6} {'options':<24} {'with words':>12} {'without':>12}")
    for fmt in ("srt", "vtt", "ass"):
        for label, options in (("none (segment cues)", None),
                               ("broadcast", SubtitleOptions(preset="broadcast")),
                               ("broadcast + highlight",
                                SubtitleOptions(preset="broadcast", highlight_words=True))):
            if fmt == "srt" and options is not None and options.highlight_words:
                continue
            a = timed(with_words, fmt, options, args.repeat)
            b = timed(without, fmt, options, args.repeat)
            print(f"{fmt:<6} {label:<24} {a * 1000:>9.1f} ms {b * 1000:>9.1f} ms")


if __name__ == "__main__":
    main()
