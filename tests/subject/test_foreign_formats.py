"""Formats interp_gan does not load, and folders where a file is expected: one line each, saying
the way in (subject/foreign.py); a state dict under another suffix and a run folder load."""
import pytest
import torch

from interp_gan.subject.loading import load_subject
from interp_gan.models.cyclegan import CycleGANGenerator


@pytest.mark.parametrize("name, words", [
    ("gen.h5", ["Keras", "tf2onnx.convert --keras"]),
    ("gen.keras", ["Keras", "--saved-model"]),
    ("frozen.pb", ["frozen GraphDef", "--graphdef"]),
    ("gen.tflite", ["TensorFlow Lite", "--tflite"]),
    ("ckpt.index", ["TensorFlow checkpoint", "SavedModel"]),
    ("ckpt.data-00000-of-00001", ["TensorFlow checkpoint"]),
    ("gen.engine", ["TensorRT", ".onnx file it was built from"]),
    ("gen.ort", ["ONNX Runtime", ".onnx"]),
    ("gen.mlmodel", ["Core ML"]),
    ("gen.pdparams", ["paddle2onnx"]),
    ("weights.npz", ["NumPy", "--model file.py:factory"]),
])
def test_a_foreign_format_is_named_with_the_way_in(tmp_path, name, words):
    p = tmp_path / name
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(ValueError) as e:
        load_subject(p)
    msg = str(e.value)
    assert "\n" not in msg and "does not load" in msg and str(p) in msg
    for w in words:
        assert w in msg


def test_a_tensorflow_js_model_json_is_named_and_other_json_is_unknown(tmp_path):
    tfjs = tmp_path / "model.json"
    tfjs.write_text('{"format": "graph-model", "modelTopology": {}}')
    with pytest.raises(ValueError, match="TensorFlow.js.*--tfjs"):
        load_subject(tfjs)
    other = tmp_path / "config.json"
    other.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="unknown checkpoint type '.json'"):
        load_subject(other)


def test_a_saved_model_folder_says_how_to_convert(tmp_path):
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(ValueError, match=r"TensorFlow SavedModel.*--saved-model .*saved --output model.onnx"):
        load_subject(tmp_path / "saved")


def test_a_folder_of_models_names_them_and_an_empty_one_says_what_was_expected(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    (d / "b.pth").write_bytes(b"x")
    (d / "a.onnx").write_bytes(b"x")
    (d / "notes.txt").write_text("x")
    (d / "decoder_iter_160000.pth.tar").write_bytes(b"x")      # pytorch-AdaIN's train.py names its snapshots so
    (d / "backup.tar").write_bytes(b"x")                      # any other tar is no model file
    with pytest.raises(ValueError, match=r"is a folder; name the model file in it: a.onnx, b.pth, "
                                         r"decoder_iter_160000.pth.tar$"):
        load_subject(d)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="folder with no model file; expected a .safetensors"):
        load_subject(tmp_path / "empty")


def test_a_state_dict_saved_as_bin_loads_like_a_pth(tmp_path):
    torch.manual_seed(0)
    G = CycleGANGenerator(ngf=4, n_blocks=2).eval()
    torch.save(G.state_dict(), tmp_path / "pytorch_model.bin")
    torch.save(G.state_dict(), tmp_path / "same.pth")
    a, b = load_subject(tmp_path / "pytorch_model.bin", device="cpu"), load_subject(tmp_path / "same.pth", device="cpu")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    ids = torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(a.generate(x, ids), b.generate(x, ids))


def test_a_training_run_folder_loads_its_checkpoint(tmp_path):
    from interp_gan.checkpoint import save_checkpoint
    from interp_gan.config import ModelConfig, Recipe
    from interp_gan.models.stylenet import StyleNet
    torch.manual_seed(0)
    mc = ModelConfig(ch=4, n_down=1, n_blocks=1, style_dim=8, latent_dim=4)
    G = StyleNet(2, ch=4, n_down=1, n_blocks=1, style_dim=8, latent_dim=4)
    run = tmp_path / "runs" / "mine"
    ckpt = save_checkpoint(run / "checkpoint.safetensors", generator=G, style_names=["a", "b"],
                           recipe=Recipe(model=mc), step=3, fingerprint="f" * 64)
    s = load_subject(run, device="cpu")
    assert s.meta["checkpoint_sha256"] == load_subject(ckpt, device="cpu").meta["checkpoint_sha256"]
    assert s.style_names == ["a", "b"]
