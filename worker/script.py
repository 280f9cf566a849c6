"""Chinese in the script a job asks for, by OpenCC (github.com/BYVoid/OpenCC).

Whisper writes Mandarin in whichever script its training data leaned to for a voice, often
Traditional for Mainland speech (issue 11); OpenCC's phrase-level dictionaries convert between
the scripts where a character table alone would pick wrong variants."""

from __future__ import annotations

from functools import lru_cache

import opencc

from shared.schemas import Segment

CHINESE = frozenset({"zh", "yue"})
_CONFIGS = {"simplified": "t2s", "traditional": "s2t"}


@lru_cache
def _converter(script: str) -> opencc.OpenCC:
    return opencc.OpenCC(_CONFIGS[script])


def in_script(segment: Segment, script: str | None) -> Segment:
    """The segment with its Chinese text (and words) in `script`; others unchanged."""
    if script is None or segment.language not in CHINESE:
        return segment
    convert = _converter(script).convert
    words = segment.words and [w.model_copy(update={"word": convert(w.word)})
                               for w in segment.words]
    return segment.model_copy(update={"text": convert(segment.text), "words": words})
