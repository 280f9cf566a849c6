"""Subtitles for deaf and hard-of-hearing viewers: `[MUSIC]`-style cues between speech (issue 25).

The `sdh` subtitle preset puts a cue naming each sound of the transcript (`sounds`, from a job
that asked for them) wherever no speech cue is on screen. The words are SDH's usual ones, in
capitals within brackets, in the transcript's language where a table below has it (else
English); a caller may name its own words for any label (`sound_words`).
"""

from __future__ import annotations

from shared.schemas import Sound, Transcript

# Label (worker/sounds.py's SOUND_CLASSES) -> the word a subtitle shows, per language.
WORDS: dict[str, dict[str, str]] = {
    "en": {"music": "MUSIC", "applause": "APPLAUSE", "cheering": "CHEERING",
           "laughter": "LAUGHTER", "crying": "CRYING", "screaming": "SCREAMING",
           "coughing": "COUGHING", "dog barking": "DOG BARKING",
           "phone ringing": "PHONE RINGING", "doorbell": "DOORBELL", "knocking": "KNOCKING",
           "siren": "SIREN", "alarm": "ALARM", "thunder": "THUNDER", "gunshot": "GUNSHOT",
           "explosion": "EXPLOSION"},
    "de": {"music": "MUSIK", "applause": "APPLAUS", "cheering": "JUBEL", "laughter": "LACHEN",
           "crying": "WEINEN", "screaming": "SCHREIE", "coughing": "HUSTEN",
           "dog barking": "HUNDEGEBELL", "phone ringing": "TELEFON KLINGELT",
           "doorbell": "TÜRKLINGEL", "knocking": "KLOPFEN", "siren": "SIRENE",
           "alarm": "ALARM", "thunder": "DONNER", "gunshot": "SCHUSS",
           "explosion": "EXPLOSION"},
    "fr": {"music": "MUSIQUE", "applause": "APPLAUDISSEMENTS", "cheering": "ACCLAMATIONS",
           "laughter": "RIRES", "crying": "PLEURS", "screaming": "CRIS", "coughing": "TOUX",
           "dog barking": "ABOIEMENTS", "phone ringing": "SONNERIE DE TÉLÉPHONE",
           "doorbell": "SONNETTE", "knocking": "ON FRAPPE", "siren": "SIRÈNE",
           "alarm": "ALARME", "thunder": "TONNERRE", "gunshot": "COUP DE FEU",
           "explosion": "EXPLOSION"},
    "es": {"music": "MÚSICA", "applause": "APLAUSOS", "cheering": "OVACIÓN",
           "laughter": "RISAS", "crying": "LLANTO", "screaming": "GRITOS", "coughing": "TOS",
           "dog barking": "LADRIDOS", "phone ringing": "SUENA EL TELÉFONO",
           "doorbell": "TIMBRE", "knocking": "LLAMAN A LA PUERTA", "siren": "SIRENA",
           "alarm": "ALARMA", "thunder": "TRUENO", "gunshot": "DISPARO",
           "explosion": "EXPLOSIÓN"},
}
LABELS = frozenset(WORDS["en"])
# A stretch between speech cues shorter than this gets no sound cue: it could not be read.
MIN_SOUND_SECONDS = 0.5


def sound_word(label: str, language: str | None, own: dict[str, str] | None = None) -> str:
    """The cue text for a sound: the caller's word, else the language's, else English's."""
    word = (own or {}).get(label) or WORDS.get(language or "", {}).get(label)
    return f"[{word or WORDS['en'].get(label, label.upper())}]"


def parse_words(value: str) -> dict[str, str]:
    """`label=WORD,label=WORD` as a mapping; raises ValueError naming what is wrong."""
    words: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        label, sep, word = (s.strip() for s in item.partition("="))
        if not sep or not word:
            raise ValueError(f"{item!r} is not label=WORD")
        if label not in LABELS:
            raise ValueError(f"unknown sound label {label!r}; labels: {', '.join(sorted(LABELS))}")
        if any(ch in word for ch in "[]\n\r"):
            raise ValueError(f"the word for {label!r} may not hold brackets or line breaks")
        words[label] = word
    return words


def gaps(sound: Sound, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of the sound (ms) that no speech cue in `taken` (sorted) covers, each long
    enough to read."""
    start, end = round(sound.start * 1000), round(sound.end * 1000)
    free, at = [], start
    for a, b in taken:
        if b <= at or a >= end:
            continue
        if a > at:
            free.append((at, a))
        at = max(at, b)
    if at < end:
        free.append((at, end))
    return [(a, b) for a, b in free if b - a >= MIN_SOUND_SECONDS * 1000]


def sound_spans(transcript: Transcript, taken: list[tuple[int, int]],
                own: dict[str, str] | None = None) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of a cue for each stretch of a sound between speech cues."""
    return [(a, b, sound_word(sound.label, transcript.language, own))
            for sound in transcript.sounds or [] for a, b in gaps(sound, taken)]
