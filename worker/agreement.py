"""LocalAgreement-2: which words of successive hypotheses over a growing buffer are settled.

The policy of whisper_streaming (Macháček et al., "Turning Whisper into Real-Time Transcription
System", 2023, https://github.com/ufal/whisper_streaming): the buffer is decoded again each
time audio has been added, and a word is confirmed once two consecutive hypotheses agree on it
and on every word before it. Confirmed words are never taken back nor repeated: each new
hypothesis is first cut after the confirmed tail, found by its words (the longest run of up to 5
of them repeated near the confirmed end), else by time: the words that start after the last
confirmed one. Words are aligned by text first because Whisper's word times at a buffer's cut
edge are loose: a last word can be stretched over seconds of speech that the next decode hears,
and a cut by time alone would lose that speech.

Words are compared without case and punctuation, so that `you,` then `you` still agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A new hypothesis's words that start this little before the last confirmed word's end are
# still taken as new (word timings are approximate).
OVERLAP_SLACK_SECONDS = 0.1
# Longest repeat of the confirmed tail looked for in a hypothesis.
MAX_NGRAM = 5
# Words of a hypothesis starting this long before the confirmed end may repeat its tail.
NGRAM_WINDOW_SECONDS = 2.0
# The confirmed end is at most this long after the last confirmed word's start: no word takes
# longer, and one stretched over the following speech must not hide it.
MAX_WORD_SECONDS = 1.0

_NOT_WORD = re.compile(r"[^\w']+")


@dataclass(frozen=True)
class TimedWord:
    """A word on the stream's clock (seconds since the session's first sample)."""

    start: float
    end: float
    text: str
    probability: float = 1.0

    @property
    def key(self) -> str:
        return _NOT_WORD.sub("", self.text.lower())


class LocalAgreement:
    """Confirms words that two consecutive hypotheses agree on."""

    def __init__(self) -> None:
        self.confirmed_end = 0.0
        self._confirmed_tail: list[TimedWord] = []
        self._previous: list[TimedWord] = []

    @property
    def tentative(self) -> list[TimedWord]:
        """The last hypothesis's words not confirmed yet."""
        return list(self._previous)

    def agree(self, hypothesis: list[TimedWord]) -> list[TimedWord]:
        """Take in a new hypothesis of the buffer; the words it newly confirms."""
        new = self._unconfirmed(hypothesis)
        agreed: list[TimedWord] = []
        for word, before in zip(new, self._previous, strict=False):
            if word.key != before.key:
                break
            # The earlier timing of the two: a decode that ends a buffer stretches its last
            # words over speech it did not hear out, and the next decode hears it.
            start = min(word.start, before.start)
            agreed.append(TimedWord(start, max(start, min(word.end, before.end)), word.text,
                                    word.probability))
        self._previous = new[len(agreed):]
        self._confirm(agreed)
        return agreed

    def flush(self) -> list[TimedWord]:
        """Confirm the last hypothesis's remaining words (the stream has ended, or the buffer
        must be cut); they are returned."""
        rest, self._previous = self._previous, []
        self._confirm(rest)
        return rest

    def _confirm(self, words: list[TimedWord]) -> None:
        if words:
            last = words[-1]
            self.confirmed_end = max(self.confirmed_end,
                                     min(last.end, last.start + MAX_WORD_SECONDS))
            self._confirmed_tail = (self._confirmed_tail + words)[-MAX_NGRAM:]

    def _unconfirmed(self, hypothesis: list[TimedWord]) -> list[TimedWord]:
        """The hypothesis's words after the confirmed ones."""
        near = [w for w in hypothesis if w.start > self.confirmed_end - NGRAM_WINDOW_SECONDS]
        if self._confirmed_tail and (after := self._after_tail(near)) is not None:
            return after
        return [w for w in hypothesis if w.start > self.confirmed_end - OVERLAP_SLACK_SECONDS]

    def _after_tail(self, near: list[TimedWord]) -> list[TimedWord] | None:
        """`near`'s words after its longest repeat of the confirmed tail (two words at least,
        or the very first word alone) that starts among the confirmed words, None when it
        repeats none of it there."""
        tail, keys = [w.key for w in self._confirmed_tail], [w.key for w in near]
        for size in range(min(len(tail), len(keys), MAX_NGRAM), 0, -1):
            starts = range(len(keys) - size + 1) if size > 1 else range(min(1, len(keys)))
            for at in starts:
                begins_confirmed = near[at].start <= self.confirmed_end + OVERLAP_SLACK_SECONDS
                if begins_confirmed and keys[at:at + size] == tail[-size:]:
                    return near[at + size:]
        return None
