"""Checkpoints that describe themselves and load without unpickling anything.

    save_checkpoint("runs/demo/checkpoint.safetensors", generator=G_ema, discriminator=D,
                    classifiers={"rgb": clf_rgb, "texture": clf_tex}, feature_net=f,
                    recipe=recipe, style_names=names, step=1000, fingerprint=data.fingerprint)
    ckpt = load_checkpoint("runs/demo/checkpoint.safetensors")
    ckpt.generator(content, code); ckpt.meta["step"]; ckpt.sha256
    meta = read_metadata("runs/demo/checkpoint.safetensors")          # JSON only, no weights

``checkpoint.safetensors`` holds the weights of G_ema (prefix ``G.``), D (``D.``) and the two
independent classifiers (``clf_rgb.``, ``clf_texture.``); its header metadata holds one JSON
document under the key ``interp_gan`` (format version, model and training config, style
names, step, data fingerprint, feature-net spec, classifier accuracies). A VGG-19 feature net
is stored as its spec only (file path + sha256, not its weights); if that file is gone or has
changed when the checkpoint is loaded, everything else loads, ``feature_net`` is None and
``meta["feature_net_missing"]`` says why. Resume state lives
in ``trainer_state.pt``, a dict of tensors / ints / floats that
``torch.load(path, weights_only=True)`` accepts (nanoGPT's checkpoint dict; stylegan2-ada's run dirs).

Every write is atomic: a temp file in the same directory, fsync, ``os.replace``; on failure
the temp file is removed and the previous file stays intact.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from interp_gan.guards import check_finite, check_model_size
from interp_gan.util import atomic_write
from interp_gan.models import (FeatureNetUnavailable, StyleClassifier, StyleDiscriminator, StyleNet,
                               build_feature_net)

__all__ = ["FORMAT", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "read_metadata",
           "LoadedCheckpoint", "save_trainer_state", "load_trainer_state",
           "build_generator", "build_discriminator", "file_sha256", "SNAPSHOT_DIR", "snapshot_path",
           "list_snapshots"]

FORMAT = "interp_gan"
FORMAT_VERSION = 1
META_KEY = "interp_gan"


# --- atomic writes ------------------------------------------------------------------------------
def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- model construction from metadata ------------------------------------------------------------
def build_generator(model_cfg: dict, num_styles: int) -> StyleNet:
    keys = ("ch", "n_down", "n_blocks", "style_dim", "latent_dim", "style_encoder")
    return StyleNet(num_styles=num_styles, **{k: model_cfg[k] for k in keys if k in model_cfg})


def build_discriminator(model_cfg: dict, num_styles: int) -> StyleDiscriminator:
    return StyleDiscriminator(num_styles=num_styles, ch=model_cfg.get("d_ch", 32),
                              n_layers=model_cfg.get("d_layers", 4))


def classifier_spec(clf: StyleClassifier) -> dict:
    return {"mode": clf.mode, "num_styles": clf.num_styles, "ch": clf.head.in_features // 4}


# --- save ------------------------------------------------------------------------------------------
def _prefixed(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype)
            .contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(path: str | Path, *, generator: StyleNet, style_names: list[str], recipe,
                    step: int, fingerprint: str, discriminator: StyleDiscriminator | None = None,
                    classifiers: dict[str, StyleClassifier] | None = None,
                    classifier_accuracy: dict[str, float] | None = None,
                    feature_net: nn.Module | None = None, extra: dict | None = None) -> Path:
    """Write ``checkpoint.safetensors`` atomically; returns the path."""
    if len(style_names) != generator.num_styles:
        raise ValueError(f"got {len(style_names)} style names for a generator with {generator.num_styles} styles")
    tensors = _prefixed("G", generator)
    if discriminator is not None:
        tensors |= _prefixed("D", discriminator)
    clf_meta = {}
    for name, clf in (classifiers or {}).items():
        tensors |= _prefixed(f"clf_{name}", clf)
        clf_meta[name] = classifier_spec(clf) | {"accuracy": (classifier_accuracy or {}).get(name)}
    recipe_dict = recipe.to_dict() if hasattr(recipe, "to_dict") else dict(recipe)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model": recipe_dict["model"], "training": recipe_dict,
        "style_names": list(style_names), "step": int(step), "data_fingerprint": fingerprint,
        "feature_net": feature_net.spec() if feature_net is not None else None,
        "has_discriminator": discriminator is not None, "classifiers": clf_meta,
        "torch_version": torch.__version__,
    } | (extra or {})
    blob = safetensors_bytes(tensors, metadata={META_KEY: json.dumps(meta)})
    return atomic_write(path, lambda fh: fh.write(blob))


# --- load ------------------------------------------------------------------------------------------
@dataclass
class LoadedCheckpoint:
    generator: StyleNet
    discriminator: StyleDiscriminator | None
    classifiers: dict[str, StyleClassifier]
    feature_net: nn.Module | None                 # RandomFeatureNet or VGGFeatureNet
    meta: dict
    sha256: str
    style_names: list[str] = field(default_factory=list)
    path: Path | None = None


def _not_ours(path: Path, why: str) -> ValueError:
    return ValueError(f"{path} is not an interp_gan checkpoint: {why} "
                      f"(expected a .safetensors file written by `interp-gan train`)")


def read_metadata(path: str | Path) -> dict:
    """The checkpoint's JSON metadata (reads the header only, no weights)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(META_KEY)
    except Exception as e:  # safetensors refuses anything that is not its own format (pickles too)
        raise _not_ours(path, f"not a safetensors file ({type(e).__name__}: {str(e)[:120]})") from None
    if raw is None:
        raise _not_ours(path, f"its safetensors header has no {META_KEY!r} metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise _not_ours(path, f"its metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise _not_ours(path, f"its {META_KEY!r} metadata is a JSON {type(meta).__name__}, expected an object")
    if meta.get("format") != FORMAT:
        raise _not_ours(path, f"metadata format is {meta.get('format')!r}, expected {FORMAT!r}")
    version = meta.get("format_version", -1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path}: metadata key 'format_version' is {version!r}; expected an integer "
                         f"(this interp_gan writes {FORMAT_VERSION})")
    names = meta.get("style_names")
    if names is None:
        raise ValueError(f"{path}: metadata has no 'style_names'; expected a list of style names, one per style "
                         f"in label order")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"{path}: metadata key 'style_names' is {names!r}; expected a non-empty list of "
                         f"non-empty strings (e.g. [\"monet\", \"ukiyoe\"])")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: metadata key 'style_names' repeats a name: {names}; expected distinct names")
    if not isinstance(meta.get("model"), dict):
        raise ValueError(f"{path}: metadata key 'model' is {meta.get('model')!r}; expected an object with the "
                         f"architecture's settings")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} has format_version {meta['format_version']}, newer than this "
                         f"interp_gan understands ({FORMAT_VERSION}); upgrade interp_gan")
    return meta


def check_shapes(module: nn.Module, sd: dict, path, prefix: str = "") -> None:
    """A state_dict whose tensors do not fit ``module``: one line naming the key, expected and got shape."""
    own = module.state_dict()
    for k, v in sd.items():
        if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{path}: tensor {prefix + k!r} has shape {list(v.shape)}, expected "
                             f"{list(own[k].shape)} for the architecture its metadata describes")


def _load_part(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Path) -> nn.Module:
    sd = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    check_shapes(module, sd, path, prefix + ".")
    missing, unexpected = module.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise _not_ours(path, f"weights under {prefix!r} do not match the stored config "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return module.eval()


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Load G (eval mode), D, the independent classifiers and the feature net; no pickle involved."""
    path = Path(path)
    meta = read_metadata(path)
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        for k in fh.keys():
            tensors[k] = fh.get_tensor(k)
    names = list(meta["style_names"])
    check_finite(((k, v) for k, v in tensors.items() if k.startswith("G.")), path)
    check_model_size(lambda: build_generator(meta["model"], len(names)), f"{path}: the generator its metadata describes")
    G = _load_part(build_generator(meta["model"], len(names)), tensors, "G", path)
    D = None
    if meta.get("has_discriminator", any(k.startswith("D.") for k in tensors)):
        check_model_size(lambda: build_discriminator(meta["model"], len(names)),
                         f"{path}: the discriminator its metadata describes")
        D = _load_part(build_discriminator(meta["model"], len(names)), tensors, "D", path)
    classifiers = {}
    for name, spec in (meta.get("classifiers") or {}).items():
        clf = StyleClassifier(spec["num_styles"], mode=spec["mode"], ch=spec["ch"])
        classifiers[name] = _load_part(clf, tensors, f"clf_{name}", path)
    f = meta.get("feature_net")
    try:
        feature_net = build_feature_net(f) if f else None
    except FeatureNetUnavailable as e:  # e.g. the VGG-19 weights file is gone: G, D, classifiers still load
        feature_net = None
        meta["feature_net_missing"] = f"feature net not rebuilt: {e}"
    mods = [G, D, feature_net, *classifiers.values()]
    for m in mods:
        if m is not None:
            m.to(device)
    return LoadedCheckpoint(generator=G, discriminator=D, classifiers=classifiers, feature_net=feature_net,
                            meta=meta, sha256=file_sha256(path), style_names=names, path=path)


# --- step snapshots (train.keep_every, docs/dynamics.md) -------------------------------------------
SNAPSHOT_DIR = "steps"
_SNAPSHOT = re.compile(r"step_(\d+)\.safetensors")


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    """Where ``train.keep_every`` keeps the snapshot of ``step``: ``<run>/steps/step_000300.safetensors``
    (a checkpoint in this module's format: G_ema, D, the classifiers, the metadata with its step)."""
    return Path(run_dir) / SNAPSHOT_DIR / f"step_{int(step):06d}.safetensors"


def list_snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every snapshot in ``<run>/steps/``, by step (the file name says the step)."""
    d = Path(run_dir) / SNAPSHOT_DIR
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _SNAPSHOT.fullmatch(p.name)) and p.is_file()] \
        if d.is_dir() else []
    return sorted(found)


# --- trainer state (resume) -------------------------------------------------------------------------
def save_trainer_state(path: str | Path, state: dict) -> Path:
    """``torch.save`` a dict of tensors/ints/floats/strings atomically (weights_only-loadable)."""
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_trainer_state(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no trainer state at {path}; cannot resume (was the run started?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a loadable interp_gan trainer state: {type(e).__name__}: "
                         f"{str(e)[:200]}") from None
