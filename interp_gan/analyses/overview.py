"""Overview of a trained model: sample outputs per style, training curves, evaluation, model card.

    finding = build_analysis("overview", n_images=6).run(subject, data)
    finding.arrays["generated"]      # uint8 [S, n, H, W, 3]: content image j toward style s
    finding.arrays["content"]        # uint8 [n, H, W, 3]
    finding.arrays["real_style"]     # uint8 [S, m, H, W, 3] (when data has style images)
    finding.tables["training_metrics"]   # step, metric, value (from metrics.jsonl, via subject.meta["metrics"])
    finding.tables["evaluation"]         # metric, value, step, description
    finding.tables["model_parts"]        # model, part, module, parameters

No hooks: the generator runs as is (same z for every style, so rows are comparable). The
model card (architecture, data, training recipe, style names) goes into ``provenance``.
Architecture: content encoder, AdaIN residual blocks (Huang & Belongie, ICCV 2017) and a
StarGAN v2 mapping network (Choi et al., CVPR 2020); evaluation scores are described in
``EVAL_METRICS``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from interp_gan.analyses.cost import Cost
from interp_gan.analyses.base import Analysis, AnalysisData, register_analysis
from interp_gan.findings import Finding
from interp_gan.util import to_uint8

__all__ = ["Overview", "EVAL_METRICS", "metrics_table", "evaluation_table", "parts_table"]

# The evaluation numbers training writes, and what each one means (shown in the report).
EVAL_METRICS: dict[str, str] = {
    "acc_rgb": "Accuracy of an independent RGB style classifier (trained on real style images only) "
               "at recognising the target style in generated images; chance = 1/S.",
    "acc_texture": "The same with the colour-blind texture classifier (grayscale, per-image normalised "
                   "contrast): credits brush-stroke texture, not palette.",
    "lum_corr": "Correlation between the luminance of the content image and of its stylised output: "
                "how much of the content's layout survives (1 = identical).",
    "ssim": "Structural similarity (Wang et al. 2004) between content and output luminance.",
    "feature_frechet": "Fréchet distance between generated and real style images in the feature space of "
                       "the style loss's network (a fixed random conv net by default, see the model card; "
                       "lower = closer). Not FID: no Inception network is used.",
}
_EVAL_PREFIXES = ("", "eval/", "eval_", "eval.")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _flatten(row: dict) -> dict:
    """{"step": 5, "eval": {"ssim": 0.4}} -> {"step": 5, "eval/ssim": 0.4} (the training loop nests eval)."""
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out |= {f"{k}/{kk}": vv for kk, vv in _flatten(v).items()}
        else:
            out[k] = v
    return out


def metrics_table(rows: list[dict] | None) -> pd.DataFrame:
    """metrics.jsonl rows -> tidy (step, metric, value); nested dicts flattened as 'eval/ssim';
    non-numeric fields are dropped."""
    out = []
    for i, row in enumerate(rows or []):
        if not isinstance(row, dict):
            continue
        row = _flatten(row)
        step = row.get("step", i)
        for k, v in row.items():
            if k == "step":
                continue
            num = _number(v)
            if num is not None:
                out.append((int(step), str(k), num))
    return pd.DataFrame(out, columns=["step", "metric", "value"])


def evaluation_table(meta: dict, rows: list[dict] | None) -> pd.DataFrame:
    """The latest value of each EVAL_METRICS key (from meta["evaluation"] or the metrics rows)."""
    found: dict[str, tuple[float, int | None]] = {}
    explicit = meta.get("evaluation") or meta.get("eval")
    sources: list[dict] = ([explicit] if isinstance(explicit, dict) else []) + \
        [_flatten(r) for r in reversed(rows or []) if isinstance(r, dict)]
    for src in sources:
        if not isinstance(src, dict):
            continue
        for key in EVAL_METRICS:
            if key in found:
                continue
            for pre in _EVAL_PREFIXES:
                num = _number(src.get(pre + key))
                if num is not None:
                    step = src.get("step", meta.get("step") if src is explicit else None)
                    found[key] = (num, int(step) if _number(step) is not None else None)
                    break
    recs = [(k, v, s, EVAL_METRICS[k]) for k, (v, s) in found.items()]
    for name, spec in (meta.get("classifiers") or {}).items():
        acc = _number((spec or {}).get("accuracy")) if isinstance(spec, dict) else None
        if acc is not None:
            recs.append((f"classifier_{name}_real_accuracy", acc, None,
                         f"Held-out accuracy of the {name} classifier on real style images: "
                         f"the ceiling for acc_{name} on generated ones."))
    df = pd.DataFrame(recs, columns=["metric", "value", "step", "description"])
    df["step"] = df["step"].astype("Int64")
    return df


def _count(m: nn.Module | None) -> int:
    return 0 if m is None else sum(p.numel() for p in m.parameters())


def parts_table(subject) -> pd.DataFrame:
    """Parameter counts per named part of the generator, plus the other networks the subject has."""
    rows = [("generator", name, type(mod).__name__, _count(mod)) for name, mod in subject.generator.named_children()]
    own = sum(p.numel() for p in subject.generator.parameters(recurse=False))
    if own:
        rows.append(("generator", "(own parameters)", type(subject.generator).__name__, own))
    for model, mod in (("discriminator", subject.discriminator), ("classifier_rgb", subject.classifier),
                       ("classifier_texture", subject.texture_classifier), ("feature_net", subject.feature_net)):
        if mod is not None:
            rows.append((model, "(all)", type(mod).__name__, _count(mod)))
    return pd.DataFrame(rows, columns=["model", "part", "module", "parameters"]).astype({"parameters": "int64"})


def _model_card(subject, data: AnalysisData) -> dict[str, Any]:
    meta = subject.meta or {}
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    card = {
        "checkpoint_sha256": meta.get("sha256") or meta.get("checkpoint_sha256"),
        "checkpoint": meta.get("checkpoint_path") or meta.get("checkpoint"),
        "data_fingerprint": data.fingerprint or meta.get("data_fingerprint"),
        "step": meta.get("step"),
        "style_names": list(subject.style_names),
        "generator": type(subject.generator).__name__,
        "generator_parameters": _count(subject.generator),
        "model_config": meta.get("model"),
        "data_config": training.get("data"),
        "train_config": training.get("train"),
        "feature_net": meta.get("feature_net"),
        "architecture": repr(subject.generator),
    }
    return {k: v for k, v in card.items() if v is not None}


@register_analysis(
    "overview", title="Model overview", order=10, fast=dict(n_images=2),
    references=("choi2020starganv2", "huang2017adain", "gatys2016style", "ustyuzhaninov2017random",
                "mescheder2018r1", "wang2004ssim", "heusel2017fid"))
class Overview(Analysis):
    """Sample grid (content -> each style), real style examples, curves, evaluation, model card."""

    def __init__(self, *, n_images: int = 6, seed: int = 0) -> None:
        self.n_images = n_images
        self.seed = seed

    def estimate_cost(self, subject, data: AnalysisData, unit) -> Cost:
        """n_images content images toward every style."""
        return Cost(forwards=min(self.n_images, len(data)) * subject.num_styles)

    @torch.inference_mode()
    def run(self, subject, data: AnalysisData) -> Finding:
        if not isinstance(self.n_images, int) or self.n_images < 1:
            raise ValueError(f"n_images must be a positive int, got {self.n_images!r}; e.g. n_images=6")
        subject.eval()
        device = subject.device
        n = min(self.n_images, len(data))
        content = data.content[:n].to(device)                      # [n,3,H,W]
        z = None
        if data.z is not None:
            z = data.z[:n].to(device)
        elif subject.latent_dim:
            z = subject.sample_z(n, seed=self.seed)
        bs = data.batch_size
        generated = []
        for s in range(subject.num_styles):
            ids = torch.full((n,), s, dtype=torch.long, device=device)
            outs = [subject.generate(content[i:i + bs], ids[i:i + bs], None if z is None else z[i:i + bs])
                    for i in range(0, n, bs)]
            generated.append(to_uint8(torch.cat(outs)))
        notes = []
        shown = content
        if generated and tuple(generated[0].shape[1:3]) != tuple(content.shape[-2:]):
            # an output of another size (e.g. a StyleGAN's native resolution): the grid needs one size
            shown = torch.nn.functional.interpolate(content.float(), size=generated[0].shape[1:3], mode="bilinear",
                                                    align_corners=False, antialias=True)
            notes.append(f"outputs are {generated[0].shape[1]}x{generated[0].shape[2]} px, content "
                         f"{content.shape[-2]}x{content.shape[-1]} px: the content is shown resized to the output size")
        arrays = {"content": to_uint8(shown), "generated": np.stack(generated)}  # [S,n,H,W,3]

        if not getattr(subject, "uses_content", True):
            notes.append("the subject ignores its content input (it synthesises from seeded z): the generated images "
                         "do not depend on the content images shown beside them")
        if data.style_images is not None and data.style_labels is not None:
            labels = data.style_labels.cpu()
            idx = [torch.nonzero(labels == s).flatten()[:self.n_images] for s in range(subject.num_styles)]
            m = max((len(i) for i in idx), default=0)
            if m:
                imgs = to_uint8(data.style_images.cpu())
                real = np.zeros((subject.num_styles, m) + imgs.shape[1:], dtype=np.uint8)
                for s, i in enumerate(idx):
                    real[s, :len(i)] = imgs[i.numpy()]
                arrays["real_style"] = real                            # [S,m,H,W,3], zero-padded
                arrays["real_style_count"] = np.array([len(i) for i in idx], dtype=np.int64)
                missing = [subject.style_names[s] for s, i in enumerate(idx) if len(i) == 0]
                if missing:
                    notes.append(f"no real style images for: {', '.join(missing)}")
        else:
            notes.append("the data has no real style images; only generated samples are shown")

        rows = (subject.meta or {}).get("metrics")
        if not rows:
            notes.append("no training metrics in the subject's metadata (metrics.jsonl not found)")
        tables = {"training_metrics": metrics_table(rows),
                  "evaluation": evaluation_table(subject.meta or {}, rows),
                  "model_parts": parts_table(subject)}
        prov = {"model_card": _model_card(subject, data), "seed": self.seed,
                "uses_content": False if not getattr(subject, "uses_content", True) else None,
                "data_fingerprint": data.fingerprint or None,
                "checkpoint_sha256": (subject.meta or {}).get("sha256") or (subject.meta or {}).get("checkpoint_sha256")}
        return Finding(analysis=self.name, params=self.params(), tables=tables, arrays=arrays,
                       notes=notes, provenance={k: v for k, v in prov.items() if v is not None})
