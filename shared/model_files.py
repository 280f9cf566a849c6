"""CTranslate2 Whisper model directories on disk (issue 22): what makes one whole, its files'
hashes, and the catalogue entries that `verbatim models add` registers.

A model directory holds `model.bin` (CTranslate2's binary format: a version, the spec's name,
then each variable's name, shape, type and bytes; `ctranslate2/specs/model_spec.py` writes it),
`config.json`, `tokenizer.json` and a vocabulary. `check_model_dir` reads `model.bin`'s headers
and seeks past each variable's bytes, so a file cut short by an unfinished copy is refused
without loading the model.

Registered models live in `$VERBATIM_DATA_DIR/models/catalogue.json`, which the API and the
workers read as they start; it is rewritten whole (a temporary file renamed over it, under a
lock), so nobody reads a half-written catalogue and a refused model is never in it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from shared.errors import InvalidModel
from shared.models import DEFAULT_CATALOGUE, ModelEntry, check_name

REGISTRY = "catalogue.json"
REQUIRED = ("model.bin", "config.json", "tokenizer.json")
VOCABULARIES = ("vocabulary.txt", "vocabulary.json")
WHISPER_SPEC = "WhisperSpec"
# A multilingual Whisper vocabulary has 51865 tokens or more; English-only ones 51864.
MULTILINGUAL_VOCABULARY = 51865
# CTranslate2's DataType enum, in order (include/ctranslate2/types.h).
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_model_dir(path: Path) -> bool:
    """Whether the directory at `path` is a whole CTranslate2 Whisper model (raises
    `InvalidModel` saying what is wrong otherwise); returns whether it is multilingual."""
    if not path.is_dir():
        raise InvalidModel(f"{path} is not a directory.")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    vocabulary = next((path / name for name in VOCABULARIES if (path / name).is_file()), None)
    if missing or vocabulary is None:
        lacking = ", ".join(missing + ([] if vocabulary else ["vocabulary.txt or .json"]))
        raise InvalidModel(f"{path} is not a CTranslate2 Whisper model: it lacks {lacking}.")
    for name in ("config.json", "tokenizer.json"):
        _json_object(path / name)
    spec = model_spec(path / "model.bin")
    if spec != WHISPER_SPEC:
        raise InvalidModel(f"{path / 'model.bin'} holds a {spec}, not a Whisper model.")
    return _vocabulary_size(vocabulary) >= MULTILINGUAL_VOCABULARY


def model_spec(path: Path) -> str:
    """The spec name of a CTranslate2 `model.bin`, once every variable's bytes are there."""
    with path.open("rb") as f:
        try:
            _read(f, "I")  # binary version
            spec = _string(f)
            _read(f, "I")  # spec revision
            for _ in range(_read(f, "I")):
                variable_header(f)
                f.seek(_read(f, "I"), os.SEEK_CUR)
            if f.tell() > path.stat().st_size:
                raise EOFError
        except (EOFError, struct.error, UnicodeDecodeError):
            raise InvalidModel(f"{path} is cut short or not a CTranslate2 model (an unfinished "
                               "copy?).") from None
    return spec


def variable_header(f: BinaryIO) -> tuple[str, tuple[int, ...], str]:
    """The name, shape and type of the next variable of a `model.bin` (its byte count and
    bytes follow)."""
    name = _string(f)
    shape = tuple(_read(f, "I") for _ in range(_read(f, "B")))
    return name, shape, DTYPES[_read(f, "B")]


def registered(model_dir: Path) -> dict[str, ModelEntry]:
    """The models `verbatim models add` registered under `model_dir`."""
    path = model_dir / REGISTRY
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text())
    return {check_name(name): ModelEntry.model_validate(entry) for name, entry in entries.items()}


def register(model_dir: Path, name: str, path: Path) -> ModelEntry:
    """Add the model directory `path` as `name`, with its files' hashes; nothing is written
    unless the whole model is there and the name is free."""
    try:
        check_name(name)
    except ValueError as exc:
        raise InvalidModel(str(exc)) from None
    multilingual = check_model_dir(path)
    hashes = {file.name: sha256(file) for file in sorted(path.iterdir()) if file.is_file()}
    entry = ModelEntry(source="path", location=str(path.resolve()), multilingual=multilingual,
                       sha256=hashes)
    model_dir.mkdir(parents=True, exist_ok=True)
    with _locked(model_dir / f".{REGISTRY}.lock"):
        entries = registered(model_dir)
        if name in entries or name in DEFAULT_CATALOGUE:
            raise InvalidModel(f"A model named {name!r} is already in the catalogue.")
        entries[name] = entry
        _write(model_dir / REGISTRY, {k: v.model_dump(exclude_none=True)
                                      for k, v in entries.items()})
    return entry


def _write(path: Path, data: object) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(data, f, indent=2)
    os.replace(f.name, path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidModel(f"{path} is not valid JSON (an unfinished copy?).") from None
    if not isinstance(data, dict):
        raise InvalidModel(f"{path} is not a JSON object.")
    return data


def _vocabulary_size(path: Path) -> int:
    if path.suffix == ".json":
        return len(json.loads(path.read_text()))
    return sum(1 for _ in path.open(encoding="utf-8"))


def _read(f: BinaryIO, fmt: str) -> int:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) < size:
        raise EOFError
    return int(struct.unpack(fmt, data)[0])


def _string(f: BinaryIO) -> str:
    length = _read(f, "H")
    data = f.read(length)
    if len(data) < length:
        raise EOFError
    return data[:-1].decode("utf-8")
