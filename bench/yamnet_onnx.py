"""Makes `worker/data/yamnet.onnx` from Google's 8-bit YAMNet TFLite, and checks it against it.

The source is `yamnet_audio_classifier_with_metadata.tflite` of tensorflow/tflite-support
(`tensorflow_lite_support/cc/test/testdata/task/audio/`, Apache-2.0: the repository's LICENSE,
the folder's BUILD `licenses = ["notice"]`, and the file's own metadata, "Apache License.
Version 2.0"). It is TF Hub's `yamnet/classification/tflite/1`: a waveform front end, then
YAMNet's MobileNet tower quantised to 8 bits. Only the tower is kept: the worker computes the
same log-mel patches with numpy (`worker/sounds.py`, `patches`). Each int8 convolution becomes
an ONNX `Conv` between QuantizeLinear/DequantizeLinear pairs at the TFLite graph's own scales
and zero points (int8 weights, per-channel scales, int32 biases, ReLU6), so onnxruntime runs it
as the 8-bit graph it is. Nothing is retrained or re-quantised.

Needs `numpy`, `onnx` and `tflite` (the TFLite schema, Apache-2.0); `--check` also needs
`ai-edge-litert` and `soundfile`. Run it in a throwaway venv, not the project's:

    python3 -m venv /tmp/yamnet && /tmp/yamnet/bin/pip install numpy onnx onnxruntime tflite \\
        ai-edge-litert soundfile
    /tmp/yamnet/bin/python bench/yamnet_onnx.py yamnet_audio_classifier_with_metadata.tflite \\
        --check tests/data/*.flac

`--check` runs both graphs on every 0.975 s clip (one every 0.48 s) of the 16 kHz files named,
the ONNX one on the TFLite front end's own patch, and prints how far their scores are apart.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

SOURCE_SHA256 = "10c95ea3eb9a7bb4cb8bddf6feb023250381008177ac162ce169694d05c317de"
SOURCE = ("tensorflow/tflite-support@dd3362ea685bb7ab1f7268c81ec567d3b720ae57:tensorflow_lite_"
          "support/cc/test/testdata/task/audio/yamnet_audio_classifier_with_metadata.tflite")
OUT = Path(__file__).resolve().parents[1] / "worker" / "data" / "yamnet.onnx"
OPS = {value: key for key, value in vars(tflite.BuiltinOperator).items()
       if not key.startswith("_")}
DTYPES = {tflite.TensorType.INT8: np.int8, tflite.TensorType.INT32: np.int32}


class Graph:
    """The ONNX graph under construction: nodes and initialisers."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def qdq(self, x: str, quant: tuple[np.ndarray, np.ndarray], name: str) -> str:
        """`x` as the TFLite graph holds it: int8 at its tensor's scale and zero point."""
        scale = self.const(f"{name}_scale", np.array(quant[0][0], np.float32))
        zero = self.const(f"{name}_zero", np.array(quant[1][0], np.int8))
        q = self.node("QuantizeLinear", [x, scale, zero], f"{name}_q")
        return self.node("DequantizeLinear", [q, scale, zero], f"{name}_dq")

    def weight(self, w: np.ndarray, scale: np.ndarray, name: str) -> str:
        """int8 weights with one scale per output channel (axis 0), zero point 0."""
        args = [self.const(f"{name}_q", w), self.const(f"{name}_scale", scale),
                self.const(f"{name}_zero", np.zeros(scale.size, np.int8))]
        return self.node("DequantizeLinear", args, name, axis=0)


def convert(model: Any) -> onnx.ModelProto:
    """The tower of the TFLite graph (from its QUANTIZE of the log-mel patch on) as ONNX."""
    sub = model.Subgraphs(0)

    def quant(i: int) -> tuple[np.ndarray, np.ndarray]:
        q = sub.Tensors(i).Quantization()
        return q.ScaleAsNumpy().astype(np.float32), q.ZeroPointAsNumpy().astype(np.int64)

    def data(i: int) -> np.ndarray:
        t = sub.Tensors(i)
        raw = model.Buffers(t.Buffer()).DataAsNumpy().tobytes()
        return np.frombuffer(raw, DTYPES[t.Type()]).reshape(t.ShapeAsNumpy())

    ops = [sub.Operators(k) for k in range(sub.OperatorsLength())]
    kinds = [OPS[model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()] for op in ops]
    start = kinds.index("QUANTIZE")
    g = Graph()
    x = g.qdq("patches", quant(ops[start].Outputs(0)), "input")
    for k, (op, kind) in enumerate(zip(ops[start + 1:], kinds[start + 1:], strict=True)):
        if kind in ("RESHAPE", "SPLIT", "DEQUANTIZE"):  # layout only, and the final float
            continue
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w, w_scale = data(op.Inputs(1)), quant(op.Inputs(1))[0]
            w_scale = np.broadcast_to(w_scale, (w.shape[0] if kind != "DEPTHWISE_CONV_2D"
                                                else w.shape[3],)).astype(np.float32)
            bias = data(op.Inputs(2)) * (quant(op.Inputs(0))[0][0] * w_scale)
            b = g.const(f"b{k}", bias.astype(np.float32))
        if kind == "FULLY_CONNECTED":
            x = g.node("Gemm", [x, g.weight(w, w_scale, f"w{k}"), b], f"fc{k}", transB=1)
        elif kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = kind == "DEPTHWISE_CONV_2D"
            options = tflite.DepthwiseConv2DOptions() if depthwise else tflite.Conv2DOptions()
            table = op.BuiltinOptions()
            options.Init(table.Bytes, table.Pos)
            if (options.Padding() != tflite.Padding.SAME
                    or options.FusedActivationFunction() != tflite.ActivationFunctionType.RELU6):
                raise SystemExit(f"op {k}: not a SAME-padded ReLU6 convolution")
            w = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)  # to OIHW
            conv = g.node("Conv", [x, g.weight(w, w_scale, f"w{k}"), b], f"conv{k}",
                          group=w.shape[0] if depthwise else 1, auto_pad="SAME_UPPER",
                          strides=[options.StrideH(), options.StrideW()],
                          kernel_shape=list(w.shape[2:]))
            x = g.node("Clip", [conv, g.const(f"lo{k}", np.array(0.0, np.float32)),
                                g.const(f"hi{k}", np.array(6.0, np.float32))], f"relu{k}")
        elif kind == "MEAN":
            x = g.node("Flatten", [g.node("GlobalAveragePool", [x], f"pool{k}")], f"mean{k}")
        elif kind == "LOGISTIC":
            x = g.node("Sigmoid", [x], f"sigmoid{k}")
        else:
            raise SystemExit(f"op {k}: {kind} is not one YAMNet's tower has")
        x = g.qdq(x, quant(op.Outputs(0)), f"out{k}")
    g.node("Identity", [x], "scores")
    graph = helper.make_graph(
        g.nodes, "yamnet",
        [helper.make_tensor_value_info("patches", TensorProto.FLOAT, ["n", 1, 96, 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 521])], g.inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                   producer_name="bench/yamnet_onnx.py", ir_version=8)
    onnx_model.doc_string = (
        "YAMNet (Google), Apache License 2.0. The 8-bit tower of " + SOURCE + " converted to"
        " ONNX by bench/yamnet_onnx.py: same weights, scales and zero points; the waveform"
        " front end left out (input: log-mel patches [n, 1, 96, 64]; output: 521 scores).")
    onnx.checker.check_model(onnx_model)
    return onnx_model


def check(source: Path, out: Path, files: list[Path]) -> None:
    import onnxruntime as ort
    import soundfile
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    lite = Interpreter(str(source), experimental_preserve_all_tensors=True,
                       experimental_op_resolver_type=resolver)
    lite.allocate_tensors()
    inp, outp = lite.get_input_details()[0]["index"], lite.get_output_details()[0]["index"]
    feature = next(t["index"] for t in lite.get_tensor_details() if t["name"] == "feature_patch")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    refs, ours = [], []
    for path in files:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        if rate != 16000:
            print(f"{path}: {rate} Hz, left out")
            continue
        audio = audio.mean(axis=1)
        for start in range(0, audio.size - 15600 + 1, 7680):
            lite.set_tensor(inp, audio[start:start + 15600])
            lite.invoke()
            refs.append(lite.get_tensor(outp)[0].copy())
            ours.append(session.run(None, {"patches": lite.get_tensor(feature)[None]})[0][0])
    ref, got = np.array(refs), np.array(ours)
    same = np.mean(ref.argmax(axis=1) == got.argmax(axis=1))
    print(f"{len(ref)} clips: max |difference| {np.abs(ref - got).max():.4f}, mean "
          f"{np.abs(ref - got).mean():.6f}, same best class {same:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tflite", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    raw = args.tflite.read_bytes()
    if hashlib.sha256(raw).hexdigest() != SOURCE_SHA256:
        sys.exit(f"{args.tflite} is not {SOURCE} (SHA-256 {SOURCE_SHA256})")
    onnx.save(convert(tflite.Model.GetRootAsModel(raw, 0)), args.out)
    print(f"{args.out}: SHA-256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")
    if args.check:
        check(args.tflite, args.out, args.check)


if __name__ == "__main__":
    main()
