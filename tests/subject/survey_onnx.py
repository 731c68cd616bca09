"""Small graphs of the forms others export and share, written node by node (or by torch.onnx.export)
with seeded random weights: what the adversarial survey of ONNX / TorchScript exports found
(tests/subject/test_onnx_survey.py). No downloads, nothing committed.

    tf_clip(path)            # tf2onnx: NHWC in and out through Transposes, unk__ dims, final Clip(-1, 1)
    plain(path, tail=...)    # NCHW conv net; tail: "Tanh", "Tanh+Resize2x", "Sigmoid-gray", ...
    unbatched(path, ...)     # [3,H,W] input and / or output (Unsqueeze / Squeeze inside)
    two_outputs(path, mask_first=False)   # an image and a mask (or the mask first)
    float64(path)            # double weights, input and output
    opset22(path)            # Conv, InstanceNormalization (named "in") at opset 22
    fused(path)              # saved from an onnxruntime session at the extended level: com.microsoft FusedConv
    unet32(path)             # a U-Net of 5 stride-2 levels: H, W multiples of 32 only
    if_graph(path)           # an If on the input's height
    two_images(path)         # AdaIN-like: content and style images
    imagenet(path, 255.0)    # (x - ImageNet mean) / std per channel, on [0, 255] (or 1.0: [0, 1])
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

onnx = __import__("pytest").importorskip("onnx", reason="ONNX subjects need onnx and onnx2torch")
from onnx import TensorProto as T, helper as h, numpy_helper as nh  # noqa: E402


def _w(rng, name, *shape, s=0.3):
    return nh.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)


def _c(name, arr, dt=np.float32):
    return nh.from_array(np.asarray(arr, dtype=dt), name)


def _vi(name, dt, shape):
    return h.make_tensor_value_info(name, dt, shape)


def _body(x: str, out: str, seed: int = 0, final: str | None = "Tanh"):
    """x (NCHW) -> Conv 3->8 -> Relu -> Conv 8->3 (-> final) -> out; (nodes, initializers)."""
    rng = np.random.default_rng(seed)
    mid = "h3" if final else out
    nodes = [h.make_node("Conv", [x, "w1", "b1"], ["h1"], pads=[1, 1, 1, 1], name="/enc/Conv"),
             h.make_node("Relu", ["h1"], ["h2"], name="/enc/Relu"),
             h.make_node("Conv", ["h2", "w2", "b2"], [mid], pads=[1, 1, 1, 1], name="/dec/Conv")]
    if final:
        nodes.append(h.make_node(final, [mid], [out], name=f"/out/{final}"))
    inits = [_w(rng, "w1", 8, 3, 3, 3), _w(rng, "b1", 8, s=0.1), _w(rng, "w2", 3, 8, 3, 3, s=0.2),
             _w(rng, "b2", 3, s=0.1)]
    return nodes, inits


def _save(path, nodes, inputs, outputs, inits, opset: int = 17, ir: int | None = None, **kw) -> None:
    m = h.make_model(h.make_graph(nodes, "g", inputs, outputs, inits), opset_imports=[h.make_opsetid("", opset)])
    if ir:
        m.ir_version = ir
    onnx.checker.check_model(m)
    onnx.save(m, str(path), **kw)


def tf_clip(path) -> None:
    """AnimeGAN-like tf2onnx export: NHWC [unk__1, unk__2, unk__3, 3] in and out, Transposes, Clip(-1, 1)."""
    n, i = _body("xt", "yc", final=None)
    nodes = [h.make_node("Transpose", ["input"], ["xt"], perm=[0, 3, 1, 2], name="transpose_in"), *n,
             h.make_node("Clip", ["yc", "lo", "hi"], ["yt"], name="clip"),
             h.make_node("Transpose", ["yt"], ["output"], perm=[0, 2, 3, 1], name="transpose_out")]
    _save(path, nodes, [_vi("input", T.FLOAT, ["unk__1", "unk__2", "unk__3", 3])],
          [_vi("output", T.FLOAT, ["unk__4", "unk__5", "unk__6", 3])], i + [_c("lo", -1.0), _c("hi", 1.0)], opset=15)


def plain(path, tail: str = "Tanh", **kw) -> None:
    """NCHW with dynamic N, H, W. tail: "Tanh"; "Tanh+Resize2x" (a 2H x 2W output); "gray" (a
    1-channel Sigmoid output)."""
    if tail == "gray":
        n, i = _body("input", "g0", final=None)
        n += [h.make_node("Conv", ["g0", "wg"], ["g1"], name="/gray/Conv"),
              h.make_node("Sigmoid", ["g1"], ["output"], name="/gray/Sigmoid")]
        i.append(_w(np.random.default_rng(1), "wg", 1, 3, 1, 1))
        out = _vi("output", T.FLOAT, ["N", 1, "H", "W"])
    elif tail == "Tanh+Resize2x":
        n, i = _body("input", "y0")
        n.append(h.make_node("Resize", ["y0", "", "sc"], ["output"], mode="nearest", name="up"))
        i.append(_c("sc", [1, 1, 2, 2]))
        out = _vi("output", T.FLOAT, ["N", 3, "H2", "W2"])
    else:
        n, i = _body("input", "output")
        out = _vi("output", T.FLOAT, ["N", 3, "H", "W"])
    _save(path, n, [_vi("input", T.FLOAT, ["N", 3, "H", "W"])], [out], i, **kw)


def unbatched(path, inp: bool = True, out: bool = True, size: int = 16) -> None:
    """[3, H, W] input (Unsqueeze inside) and / or [3, H, W] output (Squeeze at the end); the other
    side [1, 3, size, size]."""
    n, i = _body("x4" if inp else "input", "y4" if out else "output")
    if inp:
        n.insert(0, h.make_node("Unsqueeze", ["input", "ax0"], ["x4"], name="unsqueeze"))
    if out:
        n.append(h.make_node("Squeeze", ["y4", "ax0"], ["output"], name="squeeze"))
    hw = ["H", "W"] if inp else [size, size]
    _save(path, n, [_vi("input", T.FLOAT, [3, *hw] if inp else [1, 3, *hw])],
          [_vi("output", T.FLOAT, [3, *hw] if out else [1, 3, *hw])], i + [_c("ax0", [0], np.int64)])


def two_outputs(path, mask_first: bool = False) -> None:
    """An image (Tanh) and a mask (a 1x1 conv + Sigmoid on the hidden map); the mask output first
    when ``mask_first``."""
    n, i = _body("input", "output")
    n += [h.make_node("Conv", ["h2", "wm"], ["ml"], name="/mask/Conv"),
          h.make_node("Sigmoid", ["ml"], ["mask"], name="/mask/Sigmoid")]
    i.append(_w(np.random.default_rng(2), "wm", 1, 8, 1, 1))
    outs = [_vi("output", T.FLOAT, ["N", 3, "H", "W"]), _vi("mask", T.FLOAT, ["N", 1, "H", "W"])]
    _save(path, n, [_vi("input", T.FLOAT, ["N", 3, "H", "W"])], outs[::-1] if mask_first else outs, i)


def float64(path) -> None:
    """The Tanh net in double precision: weights, input and output."""
    n, i = _body("input", "output")
    i = [nh.from_array(nh.to_array(t).astype(np.float64), t.name) for t in i]
    _save(path, n, [_vi("input", T.DOUBLE, ["N", 3, "H", "W"])], [_vi("output", T.DOUBLE, ["N", 3, "H", "W"])], i)


def opset22(path) -> None:
    """Conv (opset 22) then an InstanceNormalization node named "in" (a Python keyword) and Tanh."""
    n, i = _body("input", "yc", final=None)
    n += [h.make_node("InstanceNormalization", ["yc", "sc", "bi"], ["yn"], name="in"),
          h.make_node("Tanh", ["yn"], ["output"], name="tanh")]
    rng = np.random.default_rng(3)
    i += [_c("sc", rng.uniform(0.5, 1.5, 3)), _c("bi", rng.normal(0, 0.1, 3))]
    _save(path, n, [_vi("input", T.FLOAT, ["N", 3, "H", "W"])], [_vi("output", T.FLOAT, ["N", 3, "H", "W"])], i,
          opset=22, ir=10)


def fused(path, tmp) -> None:
    """The Tanh net saved from an onnxruntime session at the extended level: two com.microsoft
    FusedConv nodes (Relu, Tanh)."""
    import onnxruntime as ort

    plain(tmp)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(path)
    so.log_severity_level = 3
    ort.InferenceSession(str(tmp), so, providers=["CPUExecutionProvider"])


class _UNet5(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.down = nn.ModuleList([nn.Conv2d(3 if i == 0 else 4, 4, 3, 2, 1) for i in range(5)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(4 if i == 0 else 8, 4, 4, 2, 1) for i in range(5)])
        self.out = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        skips = []
        for d in self.down:
            x = torch.relu(d(x))
            skips.append(x)
        skips.pop()
        for u in self.up:
            x = torch.relu(u(x))
            if skips:
                x = torch.cat([x, skips.pop()], 1)
        return torch.tanh(self.out(x))


def unet32(path) -> None:
    """A U-Net of 5 stride-2 levels, dynamic H, W: runs at multiples of 32 only."""
    torch.onnx.export(_UNet5().eval(), torch.rand(1, 3, 64, 64), str(path), input_names=["input"],
                      output_names=["output"], opset_version=17, dynamo=False,
                      dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}, "output": {0: "N", 2: "H", 3: "W"}})


def if_graph(path) -> None:
    """An If on the input's height (what a scripted `if x.shape[2] > 64` exports)."""
    n, i = _body("input", "h")
    n = [h.make_node("Shape", ["input"], ["shp"], name="shape"),
         h.make_node("Gather", ["shp", "two"], ["hh"], axis=0, name="gather"),
         h.make_node("Greater", ["hh", "k64"], ["cond"], name="greater"), *n,
         h.make_node("If", ["cond"], ["output"], name="branch",
                     then_branch=h.make_graph([h.make_node("Mul", ["h", "half"], ["ta"])], "then", [],
                                              [_vi("ta", T.FLOAT, None)]),
                     else_branch=h.make_graph([h.make_node("Identity", ["h"], ["eb"])], "else", [],
                                              [_vi("eb", T.FLOAT, None)]))]
    i += [_c("two", 2, np.int64), _c("k64", 64, np.int64), _c("half", 0.5)]
    _save(path, n, [_vi("input", T.FLOAT, ["N", 3, "H", "W"])], [_vi("output", T.FLOAT, ["N", 3, "H", "W"])], i)


def two_images(path) -> None:
    """AdaIN-like (Huang & Belongie 2017): content and style images, the style's feature mean and
    std given to the content's features."""
    n, i = _body("content", "output")
    n = [h.make_node("ReduceMean", ["style"], ["sm"], axes=[2, 3], keepdims=1, name="style_mean"),
         h.make_node("Add", ["content", "sm"], ["cs"], name="shift")] + n
    n[2].input[0] = "cs"
    _save(path, n, [_vi("content", T.FLOAT, ["N", 3, "H", "W"]), _vi("style", T.FLOAT, ["N", 3, "h", "w"])],
          [_vi("output", T.FLOAT, ["N", 3, "H", "W"])], i)


def imagenet(path, scale: float = 255.0) -> None:
    """A VGG-normalised input: (x - ImageNet mean) / std per channel, both times ``scale`` (255: a
    [0, 255] input), then the net and a Sigmoid."""
    n, i = _body("xn", "output", final="Sigmoid")
    n = [h.make_node("Sub", ["input", "mean"], ["xm"], name="sub_mean"),
         h.make_node("Div", ["xm", "std"], ["xn"], name="div_std"), *n]
    i += [_c("mean", np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1) * scale),
          _c("std", np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1) * scale)]
    _save(path, n, [_vi("input", T.FLOAT, ["N", 3, "H", "W"])], [_vi("output", T.FLOAT, ["N", 3, "H", "W"])], i)
