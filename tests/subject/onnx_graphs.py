"""Tiny ONNX graphs built with onnx.helper for the ONNX subject tests (each a few nodes, 8x8 images)."""
from __future__ import annotations

import numpy as np

onnx = __import__("pytest").importorskip("onnx", reason="ONNX subjects need onnx and onnx2torch")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPSET = 15


def _save(path, nodes, inputs, outputs, inits, opset: int = OPSET) -> None:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _img(name: str, shape) -> object:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def qdq_conv(path, weight_zero_point: int = 2, seed: int = 0) -> dict:
    """The tf2onnx int8 pattern on one conv: an NHWC [1,8,8,3] input in [0, 1] ->
    QuantizeLinear (scale 1/255, zero point -128: represents [0, 1]) -> Transpose to NCHW ->
    DequantizeLinear -> Conv (int8 weights, per-channel scales, zero point ``weight_zero_point``;
    int32 bias) -> QuantizeLinear / DequantizeLinear (scale 0.05) -> Transpose to NHWC.
    Returns the float weights and the two activation scales (for the rounding bound)."""
    rng = np.random.default_rng(seed)
    s_x, s_y = np.float32(1 / 255), np.float32(0.05)
    wq = rng.integers(-60, 60, size=(3, 3, 3, 3)).astype(np.int8)
    s_w = (rng.random(3) * 0.01 + 0.005).astype(np.float32)
    zp_w = np.full(3, weight_zero_point, dtype=np.int8)
    bq = rng.integers(-2000, 2000, size=3).astype(np.int32)
    s_b = (s_x * s_w).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (s_x, "s_x"), (np.int8(-128), "z_x"), (s_y, "s_y"), (np.int8(0), "z_y"), (wq, "w_q"), (s_w, "s_w"),
        (zp_w, "z_w"), (bq, "b_q"), (s_b, "s_b"), (np.zeros(3, np.int32), "z_b")]]
    nodes = [helper.make_node("QuantizeLinear", ["img", "s_x", "z_x"], ["img_q"], name="input_quant"),
             helper.make_node("Transpose", ["img_q"], ["img_q_nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
             helper.make_node("DequantizeLinear", ["img_q_nchw", "s_x", "z_x"], ["x"], name="input_dequant"),
             helper.make_node("DequantizeLinear", ["w_q", "s_w", "z_w"], ["w"], axis=0, name="w_dequant"),
             helper.make_node("DequantizeLinear", ["b_q", "s_b", "z_b"], ["b"], axis=0, name="b_dequant"),
             helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], name="/body/conv/Conv"),
             helper.make_node("QuantizeLinear", ["y", "s_y", "z_y"], ["y_q"], name="out_quant"),
             helper.make_node("DequantizeLinear", ["y_q", "s_y", "z_y"], ["y_f"], name="out_dequant"),
             helper.make_node("Transpose", ["y_f"], ["out"], perm=[0, 2, 3, 1], name="to_nhwc")]
    _save(path, nodes, [_img("img", [1, 8, 8, 3])], [_img("out", [1, 8, 8, 3])], inits)
    w = s_w[:, None, None, None] * (wq.astype(np.float32) - zp_w[:, None, None, None])
    return {"w": w, "s_x": float(s_x), "s_y": float(s_y)}


def integer_conv(path, op: str = "QLinearConv") -> None:
    """An NCHW uint8 graph whose conv computes in integers (QLinearConv or ConvInteger)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (np.float32(1 / 255), "s"), (np.uint8(0), "z"), (rng.integers(0, 255, (3, 3, 1, 1)).astype(np.uint8), "w_q"),
        (np.float32(0.01), "s_w"), (np.uint8(128), "z_w"), (np.float32(0.05), "s_y"), (np.uint8(128), "z_y")]]
    q = helper.make_node("QuantizeLinear", ["img", "s", "z"], ["x_q"], name="quant")
    if op == "QLinearConv":
        conv = helper.make_node("QLinearConv", ["x_q", "s", "z", "w_q", "s_w", "z_w", "s_y", "z_y"], ["y_q"],
                                name="/body/qconv")
        dq = helper.make_node("DequantizeLinear", ["y_q", "s_y", "z_y"], ["out"], name="dequant")
        nodes = [q, conv, dq]
    else:
        conv = helper.make_node("ConvInteger", ["x_q", "w_q", "z", "z_w"], ["acc"], name="/body/convint")
        cast = helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT, name="cast")
        mul = helper.make_node("Mul", ["accf", "s_w"], ["out"], name="scale")
        nodes = [q, conv, cast, mul]
    _save(path, nodes, [_img("img", [1, 3, 8, 8])], [_img("out", [1, 3, 8, 8])], inits)


def requantised(path) -> None:
    """QuantizeLinear (scale 0.01) -> DequantizeLinear (scale 0.02): a rescale, not a QDQ pair."""
    inits = [numpy_helper.from_array(a, n) for a, n in [
        (np.float32(0.01), "s1"), (np.float32(0.02), "s2"), (np.int8(0), "z")]]
    nodes = [helper.make_node("QuantizeLinear", ["img", "s1", "z"], ["q"], name="q_small"),
             helper.make_node("DequantizeLinear", ["q", "s2", "z"], ["out"], name="dq_large")]
    _save(path, nodes, [_img("img", [1, 3, 8, 8])], [_img("out", [1, 3, 8, 8])], inits)


def classifier(path) -> None:
    """An image -> 4 logits network: Conv -> GlobalAveragePool -> Flatten ([1, 4], rank 2)."""
    w = np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["img", "W"], ["f"], name="/features/Conv"),
             helper.make_node("GlobalAveragePool", ["f"], ["p"], name="/pool"),
             helper.make_node("Flatten", ["p"], ["logits"], name="/flatten")]
    _save(path, nodes, [_img("img", [1, 3, 8, 8])], [_img("logits", [1, 4])], [numpy_helper.from_array(w, "W")])


def compress(path) -> None:
    """An image -> image network with Compress (an output shape that depends on the data), which
    onnx2torch has no converter for."""
    w = np.random.default_rng(0).normal(size=(3, 3, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array([True, True, True]), "keep")]
    nodes = [helper.make_node("Conv", ["img", "W"], ["a"], name="/body/Conv"),
             helper.make_node("Compress", ["a", "keep"], ["out"], axis=1, name="/body/select_channels")]
    _save(path, nodes, [_img("img", [1, 3, 8, 8])], [_img("out", [1, 3, 8, 8])], inits)


def sharp_sigmoid(path) -> None:
    """image [1,3,h,w] -> Sigmoid(8 x - 4): in [0, 1] units its output spans [0.02, 0.98]; fed
    [0, 255] it saturates (the planted wrong range)."""
    inits = [numpy_helper.from_array(np.float32(8), "k"), numpy_helper.from_array(np.float32(4), "c")]
    nodes = [helper.make_node("Mul", ["img", "k"], ["a"], name="/gain"),
             helper.make_node("Sub", ["a", "c"], ["b"], name="/shift"),
             helper.make_node("Sigmoid", ["b"], ["out"], name="/squash")]
    _save(path, nodes, [_img("img", [1, 3, "h", "w"])], [_img("out", [1, 3, "h", "w"])], inits)


def cin_style(path, seed: int = 0) -> dict:
    """A conditional-instance-norm-like network: image [N,3,8,8] in [0,1] and a style vector [N,5]
    -> Conv (6 ch) -> scale by style @ gamma [5,6] and shift by style @ beta [5,6] (the per-style
    tables onnx2torch keeps as buffers) -> Max with a floor [1,6,1,1] (a float buffer read by a
    non-arithmetic op) -> + eps [1] -> Conv (3 ch). Returns the float initializers by role."""
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.normal(size=s).astype(np.float32)   # noqa: E731
    arrays = {"w1": f(6, 3, 1, 1), "b1": f(6), "gamma": 1 + 0.3 * f(5, 6), "beta": 0.2 * f(5, 6),
              "floor": -0.5 + 0.1 * f(1, 6, 1, 1), "eps": np.array([1e-3], np.float32), "w2": f(3, 6, 1, 1),
              "b2": f(3)}
    inits = [numpy_helper.from_array(v, k) for k, v in arrays.items()]
    inits.append(numpy_helper.from_array(np.array([-1, 6, 1, 1], np.int64), "shape"))
    nodes = [helper.make_node("Conv", ["image", "w1", "b1"], ["h"]),
             helper.make_node("MatMul", ["style", "gamma"], ["g"]),
             helper.make_node("Reshape", ["g", "shape"], ["g4"]),
             helper.make_node("Mul", ["h", "g4"], ["hg"]),
             helper.make_node("MatMul", ["style", "beta"], ["b"]),
             helper.make_node("Reshape", ["b", "shape"], ["b4"]),
             helper.make_node("Add", ["hg", "b4"], ["cin"]),
             helper.make_node("Max", ["cin", "floor"], ["m"]),
             helper.make_node("Add", ["m", "eps"], ["m2"]),
             helper.make_node("Conv", ["m2", "w2", "b2"], ["out"])]
    _save(path, nodes, [_img("image", ["N", 3, 8, 8]), _img("style", ["N", 5])], [_img("out", ["N", 3, 8, 8])],
          inits)
    return arrays
