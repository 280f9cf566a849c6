"""The bundled base model: assembled once, verified, safe when many processes start at once."""

from __future__ import annotations

import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from shared.config import Settings
from shared.errors import ModelUnavailable
from worker.model import get_model
from worker.offline_model import (
    EXPECTED_SHA256,
    MODEL_NAME,
    offline_base_model,
    package_data_dirs,
    sha256,
)


def test_assembles_the_official_files(tmp_path: Path) -> None:
    model_dir = offline_base_model(tmp_path)
    assert {p.name for p in model_dir.iterdir()} == set(EXPECTED_SHA256)
    for name, digest in EXPECTED_SHA256.items():
        assert sha256(model_dir / name) == digest
    assert offline_base_model(tmp_path) == model_dir


def test_concurrent_first_starts_agree(tmp_path: Path) -> None:
    with ProcessPoolExecutor(4) as pool:
        results = list(pool.map(offline_base_model, [tmp_path] * 4))
    assert len(set(results)) == 1
    assert sha256(results[0] / "model.bin") == EXPECTED_SHA256["model.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{MODEL_NAME}.lock", MODEL_NAME]


def test_damaged_parts_are_a_clear_error(tmp_path: Path) -> None:
    sources = []
    for index, source in enumerate(package_data_dirs(), start=1):
        copy = tmp_path / f"part{index}"
        shutil.copytree(source, copy)
        sources.append(copy)
    with (sources[1] / "model.bin.part2").open("r+b") as part:
        part.seek(1000)
        part.write(b"\xff" * 16)
    with pytest.raises(ModelUnavailable, match=r"SHA-256 mismatch for .*model\.bin"):
        offline_base_model(tmp_path / "cache", sources)
    assert not (tmp_path / "cache" / MODEL_NAME).exists()


def test_a_corrupted_cache_is_rebuilt(tmp_path: Path) -> None:
    model_dir = offline_base_model(tmp_path)
    (model_dir / "config.json").write_text("{}")
    assert sha256(offline_base_model(tmp_path) / "config.json") == EXPECTED_SHA256["config.json"]


def test_an_unavailable_model_says_how_to_provide_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = Settings(model="small", data_dir=tmp_path, device="cpu")
    with pytest.raises(ModelUnavailable, match="VERBATIM_MODEL") as error:
        get_model(settings)
    assert "'small'" in error.value.message


def test_a_local_model_directory_is_used_as_is(tmp_path: Path) -> None:
    local = shutil.copytree(offline_base_model(tmp_path / "cache"), tmp_path / "my-model")
    model = get_model(Settings(model=str(local), data_dir=tmp_path / "other", device="cpu"))
    assert model.model.is_multilingual
    assert not (tmp_path / "other" / "models").exists()
