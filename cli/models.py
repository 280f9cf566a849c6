"""`verbatim models add NAME PATH`: register your own CTranslate2 Whisper model, or convert a
Hugging Face Transformers Whisper checkpoint (what fine-tuning with `transformers` saves) with
CTranslate2's own converter (`--from-transformers`, the `convert` extra: transformers, torch).

The model joins the catalogue in `$VERBATIM_DATA_DIR/models/catalogue.json` with its files'
hashes, so that a changed file is noticed before it loads; the API and the workers read it as
they start (restart them to offer it). A converted model is written to
`$VERBATIM_DATA_DIR/models/registered/NAME`, through a temporary directory renamed into place
once the conversion succeeds: nothing is half-registered.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import typer

from shared.config import get_settings
from shared.errors import InvalidModel
from shared.model_files import check_model_dir, register

app = typer.Typer(help="Add your own models to the catalogue.", no_args_is_help=True)

# Files of a Transformers checkpoint that a CTranslate2 Whisper model keeps beside model.bin.
TOKENIZER_FILES = ("tokenizer.json", "preprocessor_config.json")

Quantization = Annotated[
    Literal["int8", "int8_float16", "int8_float32", "int16", "float16", "float32"] | None,
    typer.Option(help="Weights' type of a converted model; unset keeps the checkpoint's."),
]


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="The model's name in the catalogue.")],
    path: Annotated[Path, typer.Argument(exists=True, file_okay=False,
                                         help="A CTranslate2 model directory, or with "
                                              "--from-transformers a Transformers checkpoint.")],
    from_transformers: Annotated[bool, typer.Option(
        "--from-transformers", help="Convert a Transformers Whisper checkpoint first.")] = False,
    quantization: Quantization = None,
) -> None:
    """Register a model (its files checked and hashed) as NAME."""
    model_dir = get_settings().model_dir
    try:
        if from_transformers:
            path = convert(path, model_dir / "registered" / name, quantization)
        elif quantization:
            raise InvalidModel("--quantization applies to --from-transformers alone.")
        entry = register(model_dir, name, path)
    except InvalidModel as exc:
        typer.echo(f"verbatim: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(2) from None
    kind = "multilingual" if entry.multilingual else "English-only"
    typer.echo(f"{name}: {kind} model at {entry.location}, {len(entry.sha256)} files hashed. "
               "Restart the API and the workers to offer it.")


def convert(checkpoint: Path, target: Path, quantization: str | None) -> Path:
    """Convert the Transformers checkpoint into `target` (which must not exist yet)."""
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        raise InvalidModel("Converting needs CTranslate2's converter and its dependencies: "
                           "install `verbatim[convert]`.") from None
    if target.exists():
        raise InvalidModel(f"{target} already exists: the name is taken.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        copy = [name for name in TOKENIZER_FILES if (checkpoint / name).is_file()]
        converter = TransformersConverter(str(checkpoint), copy_files=copy)
        try:
            converter.convert(str(staging), quantization=quantization, force=True)
        except Exception as exc:  # the converter raises whatever transformers and torch raise
            raise InvalidModel(f"{checkpoint} could not be converted: {type(exc).__name__}: "
                               f"{exc}") from exc
        check_model_dir(staging)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
