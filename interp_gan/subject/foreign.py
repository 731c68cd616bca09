"""Models in formats interp_gan does not load, and folders given where a file is expected: each
named in one line that says the way in (docs/models.md, "Formats that are not loaded").

    refusal(Path("model.h5"))          # -> "model.h5 is a Keras model; ...tf2onnx..." or None
    checkpoint_in_folder(Path("runs/demo"))   # -> runs/demo/checkpoint.safetensors, or raises

TensorFlow and Keras networks come in through ONNX (tf2onnx converts SavedModels, Keras files,
frozen graphs and TFLite files); TensorRT engines and ONNX Runtime's ``.ort`` files are compiled
forms of an ONNX graph, which is what to give instead; Core ML and Paddle files go back to their
framework's ONNX exporter. Nothing here imports TensorFlow or any other framework.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["refusal", "checkpoint_in_folder", "MODEL_SUFFIXES"]

# what load_subject reads by suffix (a TorchScript archive or torch file of another suffix is found by content)
MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".pkl", ".onnx", ".model",   # .model: fast neural style
                  ".pth.tar")          # torch.save under the ImageNet-example name (pytorch-AdaIN's decoder_iter_N.pth.tar)

_TF2ONNX = "pip install tf2onnx, then "
_THEN = ", then interp-gan analyze model.onnx"

_BY_SUFFIX = {
    ".h5": ("a Keras model (HDF5)", _TF2ONNX + "python -m tf2onnx.convert --keras {p} --output model.onnx" + _THEN),
    ".hdf5": ("a Keras model (HDF5)", _TF2ONNX + "python -m tf2onnx.convert --keras {p} --output model.onnx" + _THEN),
    ".keras": ("a Keras model", "load it in Keras and save it as a SavedModel (model.export('saved')), then "
                                + _TF2ONNX + "python -m tf2onnx.convert --saved-model saved --output model.onnx"
                                + _THEN),
    ".pb": ("a TensorFlow graph (frozen GraphDef)", _TF2ONNX + "python -m tf2onnx.convert --graphdef {p} "
                                                   "--inputs INPUT:0 --outputs OUTPUT:0 --output model.onnx" + _THEN),
    ".tflite": ("a TensorFlow Lite model", _TF2ONNX + "python -m tf2onnx.convert --tflite {p} --output model.onnx"
                + _THEN + " (a quantised TFLite graph loads as a quantised ONNX graph)"),
    ".index": ("a TensorFlow checkpoint (variables only, no graph)",
               "rebuild the model in TensorFlow, restore the checkpoint, save a SavedModel and convert it: "
               + _TF2ONNX + "python -m tf2onnx.convert --saved-model DIR --output model.onnx" + _THEN),
    ".engine": ("a TensorRT engine (compiled for one GPU)", "give the .onnx file it was built from"),
    ".trt": ("a TensorRT engine (compiled for one GPU)", "give the .onnx file it was built from"),
    ".plan": ("a TensorRT engine (compiled for one GPU)", "give the .onnx file it was built from"),
    ".ort": ("an ONNX Runtime optimised model", "give the .onnx file it was made from"),
    ".mlmodel": ("a Core ML model", "export the network to ONNX from the framework it was trained in"),
    ".mlpackage": ("a Core ML model", "export the network to ONNX from the framework it was trained in"),
    ".pdparams": ("PaddlePaddle parameters", "convert the model with paddle2onnx (pip install paddle2onnx)"),
    ".pdmodel": ("a PaddlePaddle model", "convert it with paddle2onnx (pip install paddle2onnx)"),
    ".caffemodel": ("a Caffe model", "convert it to ONNX first (e.g. with a Caffe-to-ONNX converter)"),
    ".npz": ("NumPy arrays (weights without an architecture)",
             "load them into the PyTorch module they belong to and pass --model file.py:factory"),
    ".npy": ("a NumPy array (weights without an architecture)",
             "load it into the PyTorch module it belongs to and pass --model file.py:factory"),
}


def refusal(path: Path) -> str | None:
    """One line naming the format of ``path`` (a file) and the way in, for formats that are not
    loaded; None when the suffix is not one of them."""
    name = path.name.lower()
    suffix = path.suffix.lower()
    if ".data-" in name and "-of-" in name:            # TensorFlow checkpoint shards: x.data-00000-of-00001
        suffix = ".index"
    hit = _BY_SUFFIX.get(suffix)
    if suffix == ".json" and _is_tfjs(path):
        hit = ("a TensorFlow.js model", _TF2ONNX + "python -m tf2onnx.convert --tfjs {p} --output model.onnx" + _THEN)
    if hit is None:
        return None
    what, how = hit
    return f"{path} is {what}, which interp_gan does not load; {how.format(p=path)}"


def _is_tfjs(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return b'"modelTopology"' in f.read(4096)
    except OSError:
        return False


def _models_in(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(MODEL_SUFFIXES))
    except OSError:
        return []


def checkpoint_in_folder(folder: Path) -> Path:
    """The model file a folder stands for: a training run's ``checkpoint.safetensors``. Any other
    folder raises one line: a TensorFlow SavedModel says how to convert it; a folder holding model
    files names them; else what was expected."""
    run = folder / "checkpoint.safetensors"
    if run.is_file():
        return run
    if (folder / "saved_model.pb").is_file() or (folder / "saved_model.pbtxt").is_file():
        raise ValueError(f"{folder} is a TensorFlow SavedModel, which interp_gan does not load; {_TF2ONNX}"
                         f"python -m tf2onnx.convert --saved-model {folder} --output model.onnx{_THEN}")
    found = _models_in(folder)
    if found:
        shown = ", ".join(p.name for p in found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise ValueError(f"{folder} is a folder; name the model file in it: {shown}")
    raise ValueError(f"{folder} is a folder with no model file; expected a .safetensors checkpoint (or a training "
                     f"run folder holding checkpoint.safetensors), a CycleGAN / StarGAN .pth / .ckpt, an .onnx file, "
                     f"a TorchScript archive, a StyleGAN2 .pkl, or --model file.py:factory")
