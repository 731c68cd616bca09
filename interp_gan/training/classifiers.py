"""The two independent evaluation classifiers, trained once per data set on real style images.

    clfs, acc = train_classifiers(data, image_size=64)        # cached by data fingerprint
    clfs["rgb"](image).argmax(1); clfs["texture"](image)      # both frozen, eval mode
    acc == {"rgb": 0.97, "texture": 0.91}                     # on held-out real style images

``rgb`` sees colour; ``texture`` is colour-blind (grayscale, per-image normalised), so a
palette shift alone cannot fool it. They never see generated images and share nothing with
D, so they are an independent judge of whether G transfers style (never D's own head).
Each style holds out ~20% of its images (at least one when it has two or more); accuracy is
measured on centre crops of those. Classifiers depend only on the style data, so they are
cached in ``cache_dir()/classifiers/<fingerprint>-<size>-<hyperparams>.safetensors``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import Tensor

from interp_gan.models import StyleClassifier
from interp_gan.util import atomic_write
from interp_gan.training.sampling import centre_crop_batch, crop_batch

__all__ = ["train_classifiers", "split_holdout", "classifier_accuracy", "classifiers_for_styles",
           "why_no_classifiers"]


def split_holdout(style_labels: Tensor, fraction: float = 0.2, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(train indices, held-out indices): per style, ``fraction`` held out (>= 1 if it has >= 2 images)."""
    g = torch.Generator().manual_seed(seed)
    train, held = [], []
    for s in sorted(set(style_labels.tolist())):
        ix = torch.nonzero(style_labels == s).flatten()
        ix = ix[torch.randperm(len(ix), generator=g)]
        k = max(1, round(fraction * len(ix))) if len(ix) >= 2 else 0
        held.append(ix[:k]); train.append(ix[k:])
    return torch.cat(train), torch.cat(held)


@torch.no_grad()
def classifier_accuracy(clf: torch.nn.Module, images: Tensor, labels: Tensor, batch_size: int = 128) -> float:
    if len(images) == 0:
        return float("nan")
    was = clf.training
    clf.eval()
    pred = torch.cat([clf(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
    clf.train(was)
    return float((pred.cpu() == labels.cpu()).float().mean())


def _balanced_picks(labels: Tensor, train_ix: Tensor, n: int, g: torch.Generator) -> Tensor:
    """``n`` training indices: a style drawn uniformly, then one of its images (uneven style counts)."""
    by_style = [train_ix[labels[train_ix] == s] for s in sorted(set(labels[train_ix].tolist()))]
    styles = torch.randint(0, len(by_style), (n,), generator=g)
    return torch.stack([by_style[s][torch.randint(0, len(by_style[s]), (1,), generator=g)[0]] for s in styles.tolist()])


def _train_one(mode: str, images: Tensor, labels: Tensor, train_ix: Tensor, num_styles: int, size: int,
               steps: int, ch: int, batch_size: int, seed: int, device: torch.device,
               balanced: bool = False) -> StyleClassifier:
    # fork_rng: training a classifier (or finding it cached) must not move the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        clf = StyleClassifier(num_styles, mode=mode, ch=ch).to(device)
        opt = torch.optim.Adam(clf.parameters(), lr=2e-3)
        g = torch.Generator().manual_seed(seed + 1)
        for _ in range(steps):
            pick = (_balanced_picks(labels, train_ix, batch_size, g) if balanced
                    else train_ix[torch.randint(0, len(train_ix), (batch_size,), generator=g)])
            x = crop_batch(images, pick, size, g).to(device)
            loss = F.cross_entropy(clf(x), labels[pick].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return clf.cpu().eval().requires_grad_(False)


def _cache_path(fingerprint: str, size: int, hp: dict) -> Path:
    from interp_gan.data import cache_dir  # the data package owns the cache location
    key = hashlib.sha256(json.dumps(hp, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache_dir()) / "classifiers" / f"{fingerprint[:16]}-{size}px-{key}.safetensors"


def train_classifiers(data, image_size: int, steps: int = 300, ch: int = 32, batch_size: int = 32,
                      seed: int = 0, cache: bool = True, device: str | torch.device = "cpu",
                      balanced: bool = False) -> tuple[dict[str, StyleClassifier], dict[str, float]]:
    """Train (or load from cache) the ``rgb`` and ``texture`` classifiers on ``data.style``.

    ``data`` is a ``StyleData`` (style [M,3,L,L] in [-1,1], style_labels [M], style_names,
    fingerprint). Returns (classifiers on the CPU, held-out accuracy per classifier); ``device``
    is where they train; its type is part of the cache key, because weights trained on CUDA
    differ from CPU-trained ones in the last bits and a CPU run must repeat bit for bit.
    ``balanced``: each batch draws styles uniformly, then images (for very uneven style counts).
    """
    num_styles = len(data.style_names)
    hp = {"steps": steps, "ch": ch, "batch_size": batch_size, "seed": seed, "version": 1,
          "device": torch.device(device).type, **({"balanced": True} if balanced else {})}
    path = _cache_path(data.fingerprint, image_size, hp) if cache else None
    if path is not None and path.is_file():
        tensors = load_file(str(path))
        clfs = {}
        for mode in ("rgb", "texture"):
            clf = StyleClassifier(num_styles, mode=mode, ch=ch)
            clf.load_state_dict({k[len(mode) + 1:]: v for k, v in tensors.items() if k.startswith(mode + ".")})
            clfs[mode] = clf.eval().requires_grad_(False)
        acc = {m: float(tensors[f"accuracy.{m}"]) for m in ("rgb", "texture")}
        return clfs, acc
    labels = data.style_labels.long()
    train_ix, held_ix = split_holdout(labels, seed=seed)
    held = centre_crop_batch(data.style[held_ix], image_size)
    clfs, acc = {}, {}
    for mode in ("rgb", "texture"):
        clfs[mode] = _train_one(mode, data.style, labels, train_ix, num_styles, image_size,
                                steps, ch, batch_size, seed, torch.device(device), balanced)
        acc[mode] = classifier_accuracy(clfs[mode], held, labels[held_ix])
    if path is not None:
        tensors = {f"{m}.{k}": v.contiguous() for m, c in clfs.items() for k, v in c.state_dict().items()}
        tensors |= {f"accuracy.{m}": torch.tensor(a) for m, a in acc.items()}
        blob = save(tensors, metadata={"fingerprint": data.fingerprint, "image_size": str(image_size),
                                       "hparams": json.dumps(hp), "held_out": str(len(held_ix))})
        atomic_write(path, lambda fh: fh.write(blob))
    return clfs, acc


def why_no_classifiers(style_names: list[str], style_images: Tensor | None, style_labels: Tensor | None
                       ) -> str | None:
    """Why ``classifiers_for_styles`` would train none on these images (None: it would train)."""
    n = len(style_names)
    if n < 2:
        return "one style only: nothing to classify"
    if style_images is None or style_labels is None or not len(style_images):
        return "no real style images of the subject's styles in the data"
    counts = torch.bincount(style_labels.long().cpu(), minlength=n)
    lacking = [style_names[i] for i in range(n) if counts[i] < 2]
    if lacking:
        return (f"{len(lacking)} of {n} styles have fewer than 2 real images in the data "
                f"({', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''})")
    return None


def classifiers_for_styles(style_names: list[str], style_images: Tensor | None, style_labels: Tensor | None,
                           fingerprint: str, image_size: int, steps: int = 300, ch: int = 32,
                           device: str | torch.device = "cpu") -> tuple[dict[str, StyleClassifier] | None, dict | str]:
    """The two evaluation classifiers for a subject that came without them (an ONNX network, a
    third-party checkpoint), trained (or loaded from cache) on the real style images of its own
    styles: ``style_labels`` index ``style_names``. Returns (classifiers, {"rgb": acc, "texture":
    acc, "held_out": n}) or (None, the reason none were trained): every style needs at least two
    real images (one to train on, one held out), or a classifier's logit for it would be untrained.
    """
    why = why_no_classifiers(style_names, style_images, style_labels)
    if why:
        return None, why
    n = len(style_names)
    counts = torch.bincount(style_labels.long().cpu(), minlength=n)
    key = hashlib.sha256(json.dumps([fingerprint, list(style_names)]).encode()).hexdigest()

    data = SimpleNamespace(style=style_images.cpu(), style_labels=style_labels.long().cpu(),
                           style_names=list(style_names), fingerprint=key)
    uneven = bool(counts.max() > 2 * counts.min())     # e.g. 2 images of one style, 40 of another
    clfs, acc = train_classifiers(data, image_size, steps=steps, ch=ch, device=device, balanced=uneven)
    _, held = split_holdout(data.style_labels)
    info = {**acc, "held_out": int(len(held)), "steps": steps}
    if uneven:   # plain accuracy would reward always naming the big style: the mean of per-style accuracies
        x, y = centre_crop_batch(data.style[held], image_size), data.style_labels[held]
        for mode, clf in clfs.items():
            per = [classifier_accuracy(clf, x[y == s], y[y == s]) for s in sorted(set(y.tolist()))]
            info[f"{mode}_balanced"] = float(sum(per) / len(per))
        info["style_counts"] = f"{int(counts.min())} to {int(counts.max())} real images per style: balanced batches"
    return clfs, info
