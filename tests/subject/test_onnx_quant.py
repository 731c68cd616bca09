"""Folding QDQ-quantised ONNX graphs to float (interp_gan.subject.onnx_quant), on a graph built here:
the tf2onnx int8 pattern around one conv (tests/subject/onnx_graphs.py: qdq_conv).

Tolerances: the converted subject against onnxruntime on the folded graph, ONNX_TOLERANCE (1e-3);
the rounding twin against the file, FOLD_TOLERANCE (1e-6; it is bitwise equal); the subject
against onnxruntime on the quantised file, the rounding bound of one conv (derived in the test).
"""
import numpy as np
import pytest
import torch

pytest.importorskip("onnx2torch", reason="ONNX subjects need onnx and onnx2torch (pip install onnx onnx2torch)")
ort = pytest.importorskip("onnxruntime", reason="the reference check needs onnxruntime")
import onnx  # noqa: E402

from interp_gan.subject import onnx_quant  # noqa: E402
from interp_gan.subject.onnx import load_onnx_subject  # noqa: E402
from interp_gan.subject.onnx_check import (FOLD_TOLERANCE, ONNX_TOLERANCE, fold_max_abs_diff,  # noqa: E402
                                           onnx_max_abs_diff, quantised_diffs)
from interp_gan.subject.onnx_quant import fold_quantisation  # noqa: E402
from tests.subject.onnx_graphs import integer_conv, qdq_conv, requantised  # noqa: E402


@pytest.fixture
def qdq(tmp_path):
    p = tmp_path / "qdq.onnx"
    return p, qdq_conv(p)


def _content(n=3, seed=1):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_fold_removes_every_quantize_dequantize_and_keeps_a_valid_graph(qdq):
    p, _ = qdq
    m = onnx.load(str(p))
    report = fold_quantisation(m)
    assert report["quantize_dequantize_pairs"] == 2 and report["dequantized_constants"] == 2
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" not in ops and "DequantizeLinear" not in ops
    assert ops.count("Transpose") == 2 and ops.count("Conv") == 1      # the data movement stays, now float
    onnx.checker.check_model(m)
    assert [o.name for o in m.graph.output] == ["out"]                  # the output keeps its name


def test_folded_weights_are_scale_times_int_minus_zero_point(qdq):
    p, planted = qdq
    m = onnx.load(str(p))
    fold_quantisation(m)
    w = next(onnx.numpy_helper.to_array(i) for i in m.graph.initializer if i.name == "w")
    assert w.dtype == np.float32 and np.allclose(w, planted["w"], rtol=0, atol=1e-7)
    assert np.abs(w).max() > 0.1      # the zero point 2 was subtracted (not a trivial all-zero planted answer)


def test_subject_matches_onnxruntime_folded_tightly_and_quantised_within_the_rounding_bound(qdq):
    p, planted = qdq
    s = load_onnx_subject(p, device="cpu")
    c = s.meta["input_contract"]
    assert (c["layout"], c["range"]) == ("NHWC", "[0,1]") and "range" in c["inferred"]
    assert "input_quant" in c["evidence"]["range"]                       # read from the input's QuantizeLinear
    assert s.meta["graph"]["quantisation"]["quantize_dequantize_pairs"] == 2
    x = _content()
    assert onnx_max_abs_diff(p, s, x, reference="folded") <= ONNX_TOLERANCE
    # y_q - y_f = W * e_x + e_y with |e_x| <= s_x / 2 (the input grid) and |e_y| <= s_y / 2 (the output
    # grid), so per output channel |y_q - y_f| <= s_x / 2 ||W_c||_1 + s_y / 2; one more s_y covers
    # onnxruntime's fused int8 conv rounding a tie the other way. x 2: [0,1] -> [-1,1] units.
    bound = 2 * (planted["s_x"] / 2 * np.abs(planted["w"]).reshape(3, -1).sum(1).max() + 1.5 * planted["s_y"])
    mx, mean = quantised_diffs(p, s, x)
    assert 0 < mx <= bound                                              # folding dropped rounding, nothing more
    assert onnx_max_abs_diff(p, s, x) == pytest.approx(mx)


def test_rounding_twin_equals_the_quantised_file_and_a_misread_zero_point_is_caught(qdq, monkeypatch):
    p, _ = qdq
    s = load_onnx_subject(p, device="cpu")
    x = _content()
    assert fold_max_abs_diff(p, s, x) <= FOLD_TOLERANCE
    real = onnx_quant._dequantize
    monkeypatch.setattr(onnx_quant, "_dequantize", lambda q, scale, zp, axis: real(q, scale, 0 * zp, axis))
    assert fold_max_abs_diff(p, s, x) > 100 * FOLD_TOLERANCE


@pytest.mark.parametrize("op", ["QLinearConv", "ConvInteger"])
def test_integer_ops_are_refused_in_one_line_naming_node_and_op(tmp_path, op):
    p = tmp_path / "int.onnx"
    integer_conv(p, op)
    with pytest.raises(ValueError, match=rf"node '/body/\w+' \({op}\) computes in integers") as e:
        load_onnx_subject(p, device="cpu")
    assert "\n" not in str(e.value)


def test_a_rescale_is_not_folded(tmp_path):
    p = tmp_path / "rescale.onnx"
    requantised(p)
    with pytest.raises(ValueError, match=r"QuantizeLinear 'q_small' \(scale 0.01.*DequantizeLinear 'dq_large' "
                                         r"\(scale 0.02.*differ"):
        load_onnx_subject(p, device="cpu")
