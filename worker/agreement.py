"""LocalAgreement-2: which words of successive hypotheses over a growing buffer are settled.

The policy of whisper_streaming (Macháček et al., "Turning Whisper into Real-Time Transcription
System", 2023, https://github.com/ufal/whisper_streaming): the buffer is decoded again each
time audio has been added, and a word is confirmed once two consecutive hypotheses agree on it
and on every word before it. Confirmed words are never taken back nor repeated: each new
hypothesis is first cut to the words that start after the last confirmed one, less the n-gram
(up to 5 words) with which it repeats the confirmed tail.

Words are compared without case and punctuation, so that `you,` then `you` still agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A new hypothesis's words that start this little before the last confirmed word's end are
# still taken as new (word timings are approximate).
OVERLAP_SLACK_SECONDS = 0.1
# Longest repeat of the confirmed tail looked for at the start of a hypothesis.
MAX_NGRAM = 5
# A hypothesis starting this close to the confirmed end may repeat its last words.
NGRAM_WINDOW_SECONDS = 1.0

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
            agreed.append(word)
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
            self.confirmed_end = words[-1].end
            self._confirmed_tail = (self._confirmed_tail + words)[-MAX_NGRAM:]

    def _unconfirmed(self, hypothesis: list[TimedWord]) -> list[TimedWord]:
        new = [w for w in hypothesis if w.start > self.confirmed_end - OVERLAP_SLACK_SECONDS]
        if not new or not self._confirmed_tail:
            return new
        if abs(new[0].start - self.confirmed_end) >= NGRAM_WINDOW_SECONDS:
            return new
        tail = [w.key for w in self._confirmed_tail]
        for size in range(min(len(tail), len(new), MAX_NGRAM), 0, -1):
            if tail[-size:] == [w.key for w in new[:size]]:
                return new[size:]
        return new
