"""ONNX files that cannot be a Subject fail with one line that says why, from Python and from the
CLI (``error: ...``, exit 2, no traceback); the contract's options are checked the same way."""
import pytest

pytest.importorskip("onnx2torch", reason="ONNX subjects need onnx and onnx2torch (pip install onnx onnx2torch)")

from interp_gan.cli import main  # noqa: E402
from interp_gan.subject.loading import load_subject  # noqa: E402
from tests.subject.onnx_graphs import classifier, compress, sharp_sigmoid  # noqa: E402


def _one_line_cli_error(capsys, *argv) -> str:
    assert main(["inspect", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_a_classifier_is_refused_naming_its_output_rank(tmp_path, capsys):
    p = tmp_path / "clf.onnx"
    classifier(p)
    with pytest.raises(ValueError, match=r"output 'logits' has shape \[1, 4\] \(rank 2\); expected an image "
                                         r"\[N,3,H,W\]: this looks like a classifier"):
        load_subject(p, device="cpu")
    assert "classifier" in _one_line_cli_error(capsys, p)


def test_an_op_onnx2torch_cannot_convert_is_named_with_its_node(tmp_path, capsys):
    p = tmp_path / "dyn.onnx"
    compress(p)
    with pytest.raises(ValueError, match=r"node '/body/select_channels' \(Compress\) cannot be converted to torch "
                                         r"\(onnx2torch has no converter for Compress"):
        load_subject(p, device="cpu")
    assert "'/body/select_channels' (Compress)" in _one_line_cli_error(capsys, p)


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_a_truncated_file_is_one_line(tmp_path, capsys, cut):
    good = tmp_path / "good.onnx"
    classifier(good)
    data = good.read_bytes()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(ValueError, match=r"cut.onnx is not a (readable|valid) ONNX model .*truncated"):
        load_subject(p, device="cpu")
    assert "truncated" in _one_line_cli_error(capsys, p)


def test_a_file_that_is_not_onnx_is_one_line(tmp_path, capsys):
    p = tmp_path / "noise.onnx"
    p.write_bytes(bytes(range(256)) * 7)
    with pytest.raises(ValueError, match=r"noise.onnx is not a (readable|valid) ONNX model"):
        load_subject(p, device="cpu")
    _one_line_cli_error(capsys, p)


def test_bad_options_name_the_key_and_what_is_allowed(tmp_path, capsys):
    p = tmp_path / "sig.onnx"
    sharp_sigmoid(p)
    with pytest.raises(ValueError, match=r"options: unknown keys \['colour'\]; expected range, output_range"):
        load_subject(p, device="cpu", onnx_options={"colour": "rgb"})
    with pytest.raises(ValueError, match=r"range '\[0,2\]'; expected one of \[-1,1\], \[0,1\], \[0,255\]"):
        load_subject(p, device="cpu", onnx_options={"range": "[0,2]"})
    with pytest.raises(ValueError, match="style_predictor is set but the network has no style-vector input"):
        load_subject(p, device="cpu", onnx_options={"style_predictor": str(p)})
    with pytest.raises(ValueError, match="apply to .onnx files and TorchScript archives only"):
        load_subject(tmp_path / "x.safetensors", device="cpu", onnx_options={"range": "[0,1]"})
    err = _one_line_cli_error(capsys, p, "--onnx", "layout=NWHC")
    assert "layout 'NWHC'; expected NCHW or NHWC" in err


def test_inspect_writes_a_sample_and_a_wrong_range_is_hard_to_miss(tmp_path, capsys):
    """The planted net saturates when fed [0, 255] values it does not expect: inspect says so, next
    to the sample image it wrote; with the right range it does not."""
    p = tmp_path / "sig.onnx"
    sharp_sigmoid(p)
    png = tmp_path / "out" / "sample.png"
    assert main(["inspect", str(p), "--size", "32", "--sample", str(png)]) == 0
    out = capsys.readouterr().out
    assert "conversion: " in out and "(tolerance 0.001): ok" in out and "WARNING" not in out
    assert f"sample: {png.resolve()} (content | output)" in out and png.is_file()
    assert "output_range: inferred from Sigmoid '/squash' at the output" in out
    from PIL import Image
    assert Image.open(png).size == (64, 32)                             # content | output
    assert main(["inspect", str(p), "--size", "32", "--sample", str(png), "--onnx", "range=[0,255]"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: most output pixels sit at the ends of the range" in out and "from options: range" in out


def test_a_graph_that_parses_but_is_invalid_is_one_line(tmp_path, capsys):
    """A node reading a tensor nothing produces (what a cut at a field boundary can leave)."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Add", ["img", "missing"], ["out"], name="/add")
    graph = helper.make_graph([node], "broken", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    p = tmp_path / "broken.onnx"
    onnx.save(model, str(p))
    with pytest.raises(ValueError, match=r"broken.onnx is not a valid ONNX model \(ValidationError: .*missing"):
        load_subject(p, device="cpu")
    _one_line_cli_error(capsys, p)
