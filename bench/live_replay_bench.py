"""Live captions replayed offline on a clock of CPU time, so that caption policies can be compared
on a machine whose load moves: `live_bench.py`'s stream and reference words, fed to the live
decoder (`worker/live_decoder.py`) as a live worker takes them in, in one process.

The stream's clock moves on by 0.1 s while the decoder waits for a step of audio, and by each
decode's CPU seconds divided by `--cores` while it decodes (CTranslate2 decodes on two threads
here; 1.6 is how much faster than one core a decode ran on the quiet 2-core machine), so a busy
machine slows the replay little. A word's latency is when the `final` holding it came, minus
its end. It prints the finals with the clock at which each came, then the final latency (p50,
p95), reference words shown as finals, the finals' count and mean length in words, and the
decoder's CPU seconds per second of audio. It runs the decoder of the code on `PYTHONPATH`:

    PYTHONPATH=. .venv/bin/python bench/live_replay_bench.py --model tiny.en
    PYTHONPATH=. .venv/bin/python bench/live_replay_bench.py --model base \\
        --set live_pause_seconds=5 --set live_segment_seconds=2.5
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time

import numpy as np
from live_bench import RATE, matched, normal, percentile, reference_words, stream_audio

from shared.config import Settings
from worker.live_decoder import StreamingTranscriber, whisper_decode
from worker.model import get_model

CHUNK = int(0.1 * RATE)


def transcriber(settings: Settings, model: str) -> StreamingTranscriber:
    decode = whisper_decode(get_model(settings, model), "transcribe", settings)
    decode(np.zeros(RATE, dtype=np.float32), "en", "")  # warm-up, untimed
    entry = settings.catalogue[model]
    if "step_seconds" in inspect.signature(StreamingTranscriber).parameters:
        return StreamingTranscriber(decode, settings, "en", False, entry.live_step_seconds)
    return StreamingTranscriber(decode, settings, "en", False)  # a decoder with one step


def replay(stream: StreamingTranscriber, samples: np.ndarray,
           cores: float) -> list[tuple[float, str]]:
    """Each final's clock and text."""
    clock, sent, finals = 0.0, 0, []
    while sent < len(samples):
        end = min(len(samples), round(clock * RATE) // CHUNK * CHUNK)
        if end > sent:
            stream.append(samples[sent:end])
            sent = end
        if not stream.ready:
            clock = max(clock, (sent + CHUNK) / RATE)
            continue
        started = time.process_time()
        update = stream.step()
        clock += (time.process_time() - started) / cores
        finals += [(clock, segment.text) for segment in update.finals]
    started = time.process_time()
    update = stream.finish()
    clock += (time.process_time() - started) / cores
    return finals + [(clock, segment.text) for segment in update.finals]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="base", help="a catalogue model")
    parser.add_argument("--cores", type=float, default=1.6)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a setting of the decoder, e.g. live_segment_seconds=2.5")
    args = parser.parse_args()
    settings = Settings.model_validate(dict(item.split("=", 1) for item in args.set))
    samples = stream_audio(0)
    words = reference_words(samples)
    reference = [w.text for w in words]
    stream = transcriber(settings, args.model)
    cpu = time.process_time()
    finals = replay(stream, samples, args.cores)
    cpu = (time.process_time() - cpu) / (len(samples) / RATE)
    shown: list[str] = []
    final_at: dict[int, float] = {}
    for at, text in finals:
        print(f"{at:6.2f} {text}")
        shown += [w for w in (normal(w) for w in text.split()) if w]
        for index in matched(reference, shown):
            final_at.setdefault(index, at)
    latency = [final_at[i] - words[i].end for i in sorted(final_at)]
    print(f"model {args.model} {' '.join(args.set)}: final p50 {statistics.median(latency):.2f} "
          f"p95 {percentile(latency, 0.95):.2f}, words {len(final_at)}/{len(words)}, "
          f"{len(finals)} finals of {len(shown) / len(finals):.1f} words, "
          f"cpu/s {cpu:.2f}")


if __name__ == "__main__":
    main()
