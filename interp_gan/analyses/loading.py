"""Build a Subject from what a user has (DESIGN.md §3, stage ④).

    subject = load_subject("runs/demo/checkpoint.safetensors")      # an interp_gan checkpoint
    subject = load_subject("latest_net_G_A.pth")                      # CycleGAN reference layout
    subject = load_subject("my_models.py:make_generator")             # factory -> nn.Module | Subject
    subject = load_subject("mypkg.models:make_generator")

A factory returns an ``nn.Module`` (content [N,3,H,W] in [-1,1] -> image) or a ``Subject``.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from interp_gan.analyses.subject import Subject
from interp_gan.findings.provenance import sha256_file

__all__ = ["load_subject", "resolve_device", "convert_cyclegan"]


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {device!r}")
    return torch.device(device)


def _from_checkpoint(path: Path, device: torch.device) -> Subject:
    from interp_gan.training.checkpoint import load_checkpoint, read_metadata

    if read_metadata(path).get("model", {}).get("name") == "cyclegan":
        return _from_converted(path, device)
    ck = load_checkpoint(path, device=str(device))
    meta = dict(ck.meta)
    meta.setdefault("checkpoint_sha256", ck.sha256)
    meta.setdefault("checkpoint_path", str(path))
    run_dir = path.parent
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        import json
        rows = []
        for line in metrics.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill; the rest is still good
        meta["metrics"] = rows
    return Subject.from_stylenet(
        ck.generator, ck.style_names, discriminator=ck.discriminator,
        classifier=ck.classifiers.get("rgb"), texture_classifier=ck.classifiers.get("texture"),
        feature_net=ck.feature_net, meta=meta).eval()


def _read_state_dict(path: Path) -> dict:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickled modules / code are refused on purpose
        raise ValueError(f"{path} could not be loaded as a plain state_dict with weights_only=True ({e}); "
                         "save the model's state_dict() (tensors only), not the pickled module") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path} holds a {type(sd).__name__}; expected a state_dict (dict of tensors)")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _from_pth(path: Path, device: torch.device) -> Subject:
    from interp_gan.models.cyclegan import CycleGANGenerator, infer_cyclegan_config

    sd = _read_state_dict(path)
    cfg = infer_cyclegan_config(sd)
    G = CycleGANGenerator(**cfg)
    G.load_state_dict(sd)
    meta = {"model": {"name": "cyclegan", **cfg}, "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path)}
    return Subject.from_module(G.to(device), style_names=["translated"], meta=meta).eval()


def _from_converted(path: Path, device: torch.device) -> Subject:
    """A CycleGAN generator stored by ``convert_cyclegan`` (weights under ``G.``)."""
    from safetensors.torch import load_file

    from interp_gan.models.cyclegan import CycleGANGenerator
    from interp_gan.training.checkpoint import read_metadata

    meta = read_metadata(path)
    cfg = {k: v for k, v in meta["model"].items() if k != "name"}
    G = CycleGANGenerator(**cfg)
    G.load_state_dict({k[2:]: v for k, v in load_file(str(path)).items() if k.startswith("G.")})
    meta = {**meta, "checkpoint_sha256": sha256_file(path), "checkpoint_path": str(path)}
    return Subject.from_module(G.to(device), style_names=list(meta.get("style_names") or ["translated"]),
                               meta=meta).eval()


def convert_cyclegan(src: str | Path, out: str | Path) -> Path:
    """A CycleGAN reference-layout ``.pth`` -> a self-describing ``.safetensors`` (weights +
    JSON metadata: architecture, source file and its sha256); loading it needs no pickle."""
    import json

    from safetensors.torch import save as safetensors_bytes

    from interp_gan.models.cyclegan import infer_cyclegan_config
    from interp_gan.training.checkpoint import _META_KEY, FORMAT, FORMAT_VERSION, atomic_write

    src, out = Path(src), Path(out)
    if not src.is_file():
        raise FileNotFoundError(f"no such file: {src}")
    if out.exists():
        raise FileExistsError(f"{out} exists; choose another output path (files are never overwritten)")
    sd = _read_state_dict(src)
    cfg = infer_cyclegan_config(sd)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": {"name": "cyclegan", **cfg},
            "style_names": ["translated"], "converted_from": {"path": str(src), "sha256": sha256_file(src)},
            "torch_version": torch.__version__}
    tensors = {f"G.{k}": v.detach().contiguous().cpu() for k, v in sd.items()}
    blob = safetensors_bytes(tensors, metadata={_META_KEY: json.dumps(meta)})
    return atomic_write(out, lambda fh: fh.write(blob))


def _import_factory(spec: str, what: str = "--model"):
    """``path/to/file.py:name`` or ``package.module:name`` -> the object ``name`` (imported, not called)."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ValueError(f"{what} expects path/to/file.py:factory or package.module:factory, got {spec!r}")
    if target.endswith(".py"):
        p = Path(target)
        if not p.is_file():
            raise FileNotFoundError(f"{what} file {p} does not exist")
        name = f"interp_gan_user_{p.stem}"
        mod_spec = importlib.util.spec_from_file_location(name, p)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    if not hasattr(module, attr):
        raise LookupError(f"{target} has no attribute {attr!r}; it defines: "
                          f"{', '.join(n for n in dir(module) if not n.startswith('_'))[:300]}")
    return getattr(module, attr)


def load_subject(spec: str | Path, device: str = "auto") -> Subject:
    """A Subject from a checkpoint path, a CycleGAN .pth, or a ``file.py:factory`` spec."""
    dev = resolve_device(device)
    s = str(spec)
    if ":" in s and not Path(s).exists() and not (len(s) > 1 and s[1] == ":" and Path(s).exists()):
        obj = _import_factory(s)()
        if isinstance(obj, Subject):
            obj.generator.to(dev)
            return obj.eval()
        if isinstance(obj, nn.Module):
            return Subject.from_module(obj.to(dev), meta={"model": {"name": "factory", "spec": s}}).eval()
        raise TypeError(f"factory {s} returned {type(obj).__name__}; expected an nn.Module or a Subject")
    path = Path(s)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; expected a .safetensors checkpoint, a CycleGAN .pth, "
                                "or --model file.py:factory")
    if path.suffix == ".safetensors":
        return _from_checkpoint(path, dev)
    if path.suffix in (".pth", ".pt"):
        return _from_pth(path, dev)
    raise ValueError(f"unknown checkpoint type {path.suffix!r}; expected .safetensors or .pth")
