"""The one place that wires the stages (docs/architecture.md): subject -> data -> analyses -> report.

    report_dir = analyze("runs/demo/checkpoint.safetensors", load_pipeline("analyses/demo.toml"),
                         out_dir="reports/demo")

Every stage's output is a saved value (checkpoint, Findings, report files), so each stage
can also run alone. An analysis that cannot run on this subject is recorded as skipped with
its reason; an analysis that fails is recorded with its error and the run goes on (the CLI
exits non-zero at the end, so a failure is never silent).

Under ``torchrun`` (a process group with more than one rank, docs/scaling.md) every rank calls
``analyze``: the analyses that shard (``sharded = True``: dissection, style_units) run first,
on every rank, each rank harvesting its share of the images and merging; then rank 0 alone runs
the others (they need all images in one process) and writes the report; the other ranks return
without writing. A sharded analysis that fails on one rank fails on every rank, with the rank
and the error in the message (``distributed.fail_together``), and the run goes on.

Before the first analysis the run's cost is estimated and printed (``plan_analyses``;
``analyses/cost.py``): the subject's forward and forward+backward are timed at the pipeline's
image size and batch, each analysis counts its generator passes from its parameters, and the
table shows seconds per analysis and in all. A pipeline ``budget_s`` is shared out among the
analyses that size themselves to a budget. While an analysis runs a progress bar counts the
images through the generator (stderr, on a terminal); its start and finish lines, with the
measured and estimated seconds, always print, and so does estimate vs actual at the end.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.analyses.cost import (Cost, Progress, UnitCosts, comparison_table, count_generator, estimate_table,
                                      fmt_seconds, measure_unit_costs, share_budget)
from interp_gan.distributed import all_gather_objects, rank_and_world
from interp_gan.subject.geometry import analysis_size
from interp_gan.harvest.hooks import default_layer_notes
from interp_gan.harvest.layout import probe_layers
from interp_gan.subject.factory import probe_module_subject
from interp_gan.subject.loading import load_subject
from interp_gan.subject.protocol import Subject
from interp_gan.config import DataConfig, PipelineConfig
from interp_gan.util import shown
from interp_gan.findings import Finding, provenance
from interp_gan.guards import NonFiniteOutput, check_out_dir, check_report_owner

# An analysis whose generated images hold NaN / Inf in more than this fraction fails (issue #16).
MAX_NON_FINITE_FRACTION = 0.01

__all__ = ["analyze", "analysis_data", "run_analyses", "plan_analyses", "Plan", "write_report_for",
           "use_feature_net", "attach_classifiers"]


def _log(msg: str, every_rank: bool = False) -> None:
    """Print on rank 0 (every rank's message when ``every_rank``, tagged with its rank)."""
    rank, world = rank_and_world()
    if rank == 0 or every_rank:
        print(f"[interp-gan{f' rank {rank}' if world > 1 else ''}] {msg}", flush=True)


def _style_set_hint(subject: Subject) -> str:
    """For a model whose styles are a style set's codes (a style predictor, pytorch-AdaIN): how --data's own
    style folders become its styles (``resolve_data_dir`` fills in ``{style_dir}``); "" for any other model."""
    if not isinstance(subject.meta.get("style_set"), dict):
        return ""
    if (subject.meta.get("model") or {}).get("name") == "adain":
        return "to make them its styles, load it as 'decoder.pth#vgg=...,style_set={style_dir}'"
    return "to make them its styles, add --onnx style_set={style_dir}"


def analysis_data(subject: Subject, cfg: PipelineConfig, source: str = "embedded") -> AnalysisData:
    """Content images (centre crops at cfg.image_size) each paired with a target style
    (balanced: image i -> style i mod S), seeded z, and real style images where the subject's
    style names exist in the data. A ``--data`` folder is sampled before anything is decoded:
    ``cfg.n_images`` photos in a seeded order (``cfg.seed``), at most ``cfg.style_images_per_style``
    images per style; ``max_bad_fraction`` applies to the files tried (``data/sampling.py``)."""
    from interp_gan.data import EMBEDDED_STYLES, Sample, centre_crop, load_data
    from interp_gan.data.folders import match_style, resolve_data_dir
    from interp_gan.findings.stats import MIN_SAMPLES_FOR_CI

    names = subject.style_names
    if source == "embedded":
        known = tuple(n for n in names if n in EMBEDDED_STYLES)
        dcfg = DataConfig(source="embedded", styles=known or (EMBEDDED_STYLES[0],),
                          image_size=cfg.image_size, load_size=cfg.image_size)
        notes: list[str] = []
        sample = None          # 256 small photos, built by us: read whole, as its fingerprint always covered
    else:   # DIR/content + DIR/style/<name>, CycleGAN trainA/trainB, or a folder of photos
        kw, notes = resolve_data_dir(source, names, _style_set_hint(subject))
        dcfg = DataConfig(**kw, image_size=cfg.image_size, load_size=cfg.image_size,
                          max_bad_fraction=cfg.max_bad_fraction)
        # only the files used are decoded: n_images photos in a seeded order, a capped sample per style
        per_style, note = _style_cap(cfg, len(kw.get("styles") or names))
        notes = notes + ([note] if note else [])
        sample = Sample(content=cfg.n_images, per_style=per_style, seed=cfg.seed)
    sd = load_data(dcfg, sample=sample)
    if sd.skipped:
        _log(f"skipped {sum(sd.skipped.values())} unreadable image(s) "
             f"({', '.join(f'{k} {v}' for k, v in sorted(sd.skipped.items()))}): {', '.join(sd.skipped_files[:5])}")
    notes = notes + sd.notes
    if source != "embedded" and len(sd.content) < MIN_SAMPLES_FOR_CI:
        notes.append(f"only {len(sd.content)} content image(s): the analyses' confidence intervals need at least "
                     f"{MIN_SAMPLES_FOR_CI}, so those analyses fail; add photos to {source}")
    notes = [shown(n) for n in notes]            # folder and file names that are not UTF-8: escaped
    for line in notes:
        _log(f"data: {line}")
    if len(sd.content) < cfg.n_images:
        _log(f"data has {len(sd.content)} content images; using all of them (n_images={cfg.n_images})")
    if sample is None:
        g = torch.Generator().manual_seed(cfg.seed)
        order = torch.randperm(len(sd.content), generator=g)[: cfg.n_images]
        content = centre_crop(sd.content[order], cfg.image_size)
    else:                      # already the seeded choice, in its order (data/sampling.py)
        content = centre_crop(sd.content, cfg.image_size)
    n = len(content)
    style_ids = torch.arange(n) % subject.num_styles
    z = subject.sample_z(n, seed=cfg.seed).cpu() if subject.latent_dim else None
    style_images = style_labels = None
    if sd.style is not None and len(sd.style):
        # map the data's style labels onto the subject's style indices; drop styles it lacks
        matched = [match_style(s, names) for s in sd.style_names]      # a folder's name, in any case
        lut = {i: names.index(m) for i, m in enumerate(matched) if m is not None}
        keep = torch.tensor([int(l) in lut for l in sd.style_labels], dtype=torch.bool)
        if keep.any():
            style_images = centre_crop(sd.style[keep], cfg.image_size)
            style_labels = torch.tensor([lut[int(l)] for l in sd.style_labels[keep]])
    batch_size = cfg.batch_size
    if getattr(subject, "meta", {}).get("one_image_per_call") and batch_size > 1:
        # the network runs each image (or style group) in its own call, so a hook would fire several times
        # per batch and keep only the last call's activations: batches of one give every image its call
        batch_size = 1
        _log("the network runs one image per call, so the analyses use batches of one (batch_size 1): "
             "a hook then sees every image")
    return AnalysisData(content=content, style_ids=style_ids, z=z, style_images=style_images,
                        style_labels=style_labels, fingerprint=sd.fingerprint, batch_size=batch_size,
                        extra={"skipped_images": sd.skipped, "skipped_files": sd.skipped_files, "source": sd.source,
                               "data_notes": notes,
                               # a sampled folder: the classifiers' cache follows the style images alone, so
                               # another n_images or content sample does not train them again
                               **({"style_fingerprint": sd.style_fingerprint} if sample is not None else {})})


STYLE_IMAGES_BYTES = 2 * 2 ** 30    # the real style images held for an analysis (float32 at image_size)


def _style_cap(cfg: PipelineConfig, n_styles: int) -> tuple[int, str]:
    """``cfg.style_images_per_style``, lowered (not below 64) so that the real style images held in
    memory stay within ``STYLE_IMAGES_BYTES`` (26 styles x 512 images at 256 px would be 10 GiB),
    and the note that says so (empty when nothing was lowered)."""
    per_image = 3 * cfg.image_size ** 2 * 4
    cap = cfg.style_images_per_style
    fit = int(STYLE_IMAGES_BYTES // (max(1, n_styles) * per_image))
    if cap <= fit or cap <= 64:
        return cap, ""
    low = max(64, fit)
    return low, (f"style images: at most {low} per style (style_images_per_style {cap} lowered so that "
                 f"{n_styles} styles at {cfg.image_size} px stay within {STYLE_IMAGES_BYTES / 2 ** 30:g} GiB "
                 "of memory; --set style_images_per_style=N to choose)")


def _to_device(data: AnalysisData, device: torch.device) -> AnalysisData:
    mv = lambda t: None if t is None else t.to(device)  # noqa: E731
    return replace(data, content=mv(data.content), style_ids=mv(data.style_ids), z=mv(data.z),
                   style_images=mv(data.style_images), style_labels=mv(data.style_labels))


def _feature_net_note(subject: Subject) -> dict | str | None:
    """Which feature net f the analyses used: its spec, or why there is none."""
    f = subject.feature_net
    if f is None:
        return subject.meta.get("feature_net_missing")
    spec = f.spec() if callable(getattr(f, "spec", None)) else {"name": type(f).__name__}
    return {**spec, "source": "pipeline" if "analysis_feature_net" in subject.meta else "subject"}


def use_feature_net(subject: Subject, spec: str) -> Subject:
    """Give ``subject`` the feature net named by ``spec`` ("random" or "vgg19:<path>") for Gram
    distances, in place of its own or where it has none (e.g. a third-party CycleGAN). The
    subject's own training spec stays in ``meta["feature_net"]``; the one used is in
    ``meta["analysis_feature_net"]``."""
    from interp_gan.models import build_feature_net

    f = build_feature_net(spec).to(subject.device).eval()
    subject.feature_net = f
    subject.meta = {**subject.meta, "analysis_feature_net": f.spec()}
    return subject


def _fit_image_size(subject: Subject, cfg: PipelineConfig) -> PipelineConfig:
    """A generator that only takes sizes in multiples of ``size_multiple`` (a U-Net with 8 levels:
    256) gets image_size rounded up to one, and an ONNX graph that declares one square size
    (``fixed_size``: the ONNX Model Zoo's style networks, 224x224) gets that size, each said in one
    line, instead of failing every analysis. One non-square size (H, W) gets max(H, W): the subject
    resizes the square images to (H, W) and its output back (``subject.geometry``)."""
    fixed = getattr(subject.generator, "fixed_size", None)
    if fixed and fixed[0] != fixed[1]:     # one non-square size: the subject resizes (subject/geometry.py)
        size = analysis_size(fixed)
        if cfg.image_size != size:
            _log(f"image_size {cfg.image_size} -> {size}: the longer side of the {fixed[0]}x{fixed[1]} images the "
                 "model takes (resized in and out)")
        return replace(cfg, image_size=size)
    if fixed and fixed[0] == fixed[1] and cfg.image_size != fixed[0] and fixed[0] >= 16:
        onnx = subject.meta.get("model", {}).get("name") == "onnx"
        _log(f"image_size {cfg.image_size} -> {fixed[0]}: the {'graph' if onnx else 'model'} declares "
             f"{fixed[0]}x{fixed[1]} images only" + (" (--onnx size=free runs a fully convolutional graph at any size)"
                                                     if onnx else " (its fixed_size)"))
        return replace(cfg, image_size=int(fixed[0]))
    m = int(getattr(subject.generator, "size_multiple", 1) or 1)
    if m <= 1 or cfg.image_size % m == 0:
        return cfg
    size = -(-cfg.image_size // m) * m
    _log(f"image_size {cfg.image_size} -> {size}: {type(subject.generator).__name__} takes multiples of {m} "
         f"(--set image_size=N with N a multiple of {m} to choose)")
    return replace(cfg, image_size=size)


def attach_classifiers(subject: Subject, data: AnalysisData, image_size: int) -> Subject:
    """Give a subject that came without the two independent style classifiers (an ONNX network,
    a third-party checkpoint) a pair trained on the data's real images of its own styles (cached
    by data and style names; for a sampled ``--data`` folder by its style images alone), so the
    analyses that judge style can run; their held-out accuracy goes into
    ``meta["analysis_classifiers"]`` (and the report's model card). When that is not possible
    ``meta["classifiers_missing"]`` says why and those analyses skip with it."""
    from interp_gan.training.classifiers import classifiers_for_styles, why_no_classifiers

    if why_no_classifiers(subject.style_names, data.style_images, data.style_labels) is None:   # else: said below
        _log(f"independent style classifiers for {subject.num_styles} styles: training on the real style images "
             f"(minutes on a CPU the first time; cached after) ...")
    clfs, info = classifiers_for_styles(subject.style_names, data.style_images, data.style_labels,
                                        data.extra.get("style_fingerprint") or data.fingerprint, image_size)
    if clfs is None:
        subject.meta = {**subject.meta, "classifiers_missing": info}
        _log(f"no independent style classifiers: {info}")
        return subject
    subject.classifier = clfs["rgb"].to(subject.device)
    subject.texture_classifier = clfs["texture"].to(subject.device)
    subject.meta = {**subject.meta, "analysis_classifiers": {"trained_on": "the data's real style images", **info}}
    _log(f"independent style classifiers trained on real style images: held-out accuracy rgb {info['rgb']:.3f}, "
         f"texture {info['texture']:.3f} ({info['held_out']} images, {subject.num_styles} styles)"
         + (f"; {info['style_counts']}, mean per-style accuracy rgb {info['rgb_balanced']:.3f}, texture "
            f"{info['texture_balanced']:.3f}" if "style_counts" in info else ""))
    chance = 1 / subject.num_styles
    if max(info["rgb"], info["texture"]) <= chance:     # what they say of a generated image is a guess
        note = (f"the style classifiers recognise held-out real style images no better than chance ({chance:.3g}: "
                f"rgb {info['rgb']:.3g}, texture {info['texture']:.3g} on {info['held_out']} images): the analyses "
                "that judge style with them measure nothing; add real images of each style to --data")
        _log(f"warning: {note}")
        subject.meta = {**subject.meta, "model_notes": [*(subject.meta.get("model_notes") or []), note]}
    return subject


@contextlib.contextmanager
def _count_non_finite(subject: Subject):
    """Count the generated images holding NaN / Inf while the body runs (every ``generate`` and
    ``stylize_code`` call, the path every analysis takes); yields ``[bad, total]``."""
    counts = [0, 0]
    originals = {k: getattr(subject, k) for k in ("_generate", "_stylize_code")}

    def wrap(fn):
        if fn is None:
            return None

        def checked(*args, **kwargs):
            out = fn(*args, **kwargs)
            if torch.is_tensor(out) and out.dim() >= 1 and out.is_floating_point():
                with torch.no_grad():
                    counts[0] += int((~torch.isfinite(out.detach())).flatten(1).any(1).sum()) if out.dim() > 1 \
                        else int((~torch.isfinite(out.detach())).any())
                counts[1] += len(out) if out.dim() > 1 else 1
            return out
        return checked

    for k, fn in originals.items():
        setattr(subject, k, wrap(fn))
    try:
        yield counts
    finally:
        for k, fn in originals.items():
            setattr(subject, k, fn)


@dataclass
class Plan:
    """What the run will cost (``plan_analyses``): per analysis the parameters it runs with (a
    share of the pipeline's ``budget_s`` added), its Cost and estimated seconds, and the unit
    costs they rest on."""
    unit: UnitCosts
    params: dict[str, dict] = field(default_factory=dict)
    costs: dict[str, Cost] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    budgets: dict[str, float] = field(default_factory=dict)
    fixed: dict[str, float] = field(default_factory=dict)   # seconds (re-runs included) the budget cannot size

    def table(self) -> str:
        return estimate_table(self.costs, self.unit, self.budgets)

    def budget_line(self, budget_s: float) -> str:
        """What the pipeline's budget_s went to; when the analyses that cannot size themselves take
        it all, which ones do (the others then run at their floors)."""
        line = f"  pipeline budget_s {fmt_seconds(budget_s)} shared among {', '.join(self.budgets) or 'no analysis'}"
        fixed = sum(self.fixed.values())
        if self.budgets and fixed >= budget_s - self.unit.measure_s:
            big = sorted(self.fixed.items(), key=lambda kv: -kv[1])[:3]
            line += (f"\n  the analyses that cannot size themselves take {fmt_seconds(fixed)} of it ("
                     + ", ".join(f"{n} {fmt_seconds(s)}" for n, s in big) + "): those above run at their floors;"
                     " lower those analyses' sizes, leave one out, or raise budget_s")
        return line


def _estimate(name: str, params: dict, subject: Subject, data: AnalysisData, unit: UnitCosts) -> Cost:
    try:
        return build_analysis(name, **params).estimate_cost(subject, data, unit)
    except Exception as e:     # an estimate never stops a run; the analysis itself says what is wrong
        return Cost(forwards=len(data), notes=[f"no estimate ({type(e).__name__}: {e}); one pass assumed"])


def plan_analyses(subject: Subject, data: AnalysisData, cfg: PipelineConfig, unit: UnitCosts | None = None) -> Plan:
    """Measure the subject's unit costs (unless given), estimate every analysis, and share out
    ``cfg.budget_s``: the analyses with a ``budget_s`` parameter that the pipeline leaves unset
    get a share (``cost.share_budget``: the others' estimates are taken off the budget first, each
    gets at most what it would use; an analysis that replication re-runs k times weighs (1 + k) x
    its estimate, so its share pays for its re-runs too). Under torchrun rank 0 plans and every rank
    gets its plan."""
    rank, world = rank_and_world()
    plan = None
    if rank == 0:
        if unit is None:
            _log("timing the subject (one image, a batch, a forward+backward) for the estimate ...")
            unit = measure_unit_costs(subject, data, data.batch_size)
        plan = Plan(unit=unit, params={s.name: dict(s.params) for s in cfg.analyses})
        data.extra["planned"] = plan.params          # read by analyses that re-run others (replication)
        for spec in cfg.analyses:
            plan.costs[spec.name] = _estimate(spec.name, plan.params[spec.name], subject, data, unit)
        if cfg.budget_s > 0:
            sizable = {s.name for s in cfg.analyses if "budget_s" in inspect.signature(
                type(build_analysis(s.name, **s.params)).__init__).parameters and s.params.get("budget_s") is None
                and not plan.costs[s.name].skip}
            secs = {n: (0.0 if c.skip else c.seconds(unit)) for n, c in plan.costs.items()}
            # an analysis that re-runs others (replication) is paid from their shares: each re-run
            # analysis weighs (1 + its re-runs) x its own estimate, and its budget_s is its share / weight
            reruns: dict[str, float] = {}
            folded = set()
            for spec in cfg.analyses:
                a = build_analysis(spec.name, **spec.params)
                runs = a.reruns() if getattr(type(a), "reads_plan", False) else {}
                if runs and not plan.costs[spec.name].skip and set(runs) <= set(secs):
                    folded.add(spec.name)          # (re-running one the pipeline lacks: priced as fixed)
                    for n, k in runs.items():
                        reruns[n] = reruns.get(n, 0.0) + k
            weight = {n: 1.0 + reruns.get(n, 0.0) for n in secs}
            weighed = {n: secs[n] * weight[n] for n in secs if n not in folded}
            left = max(0.0, cfg.budget_s - unit.measure_s)
            plan.fixed = {n: s for n, s in weighed.items() if n not in sizable and s > 0}
            for n, b in share_budget(left, weighed, sizable).items():
                b = b / weight[n]
                plan.budgets[n] = b
                if secs[n] > b:
                    # a share of nothing is still a budget (every size to its floor); 0 would mean none
                    plan.params[n] = {**plan.params[n], "budget_s": max(round(b, 1), 0.1)}
                    plan.costs[n] = _estimate(n, plan.params[n], subject, data, unit)
        for n in plan.costs:   # re-priced with the others' final (budget-sized) parameters
            if getattr(type(build_analysis(n, **plan.params[n])), "reads_plan", False):
                plan.costs[n] = _estimate(n, plan.params[n], subject, data, unit)
        for spec in cfg.analyses:
            if spec.params.get("budget_s"):
                plan.budgets.setdefault(spec.name, float(spec.params["budget_s"]))
        sharded = {s.name for s in cfg.analyses if type(build_analysis(s.name, **s.params)).sharded}
        plan.seconds = {n: 0.0 if c.skip else c.seconds(unit) / (world if n in sharded else 1)
                        for n, c in plan.costs.items()}
    if world > 1:
        plan = all_gather_objects(plan)[0]
    return plan


def run_analyses(subject: Subject, data: AnalysisData, cfg: PipelineConfig,
                 plan: Plan | None = None) -> tuple[dict[str, Finding], list[str]]:
    """Run each configured analysis; returns (findings by name, names that failed), in the
    config's order. Under torchrun: the sharded analyses on every rank, then the others on rank
    0 only (module docstring); a rank other than 0 returns only the sharded ones. With a
    ``plan`` (``plan_analyses``) each analysis runs with the plan's parameters, its start and
    finish lines give the estimate, a progress bar counts its generator images, and the
    Finding's provenance has ``estimated_seconds``."""
    findings: dict[str, Finding] = {}
    failed: list[str] = []
    base_prov = dict(checkpoint_sha256=subject.meta.get("checkpoint_sha256", ""), data_fingerprint=data.fingerprint,
                     pipeline=cfg.to_dict(), seed=cfg.seed, feature_net=_feature_net_note(subject))
    specs = list(cfg.analyses)
    rank, world = rank_and_world()
    if world > 1:
        # sharded ones first: the other ranks are then done and never wait on rank 0's own work
        sharded = [s for s in specs if type(build_analysis(s.name, **s.params)).sharded]
        specs = sharded + ([s for s in specs if s not in sharded] if rank == 0 else [])
        _log(f"{world} ranks: {', '.join(s.name for s in sharded) or 'no analysis'} sharded over all ranks, "
             f"the others on rank 0")
    # analyses that read earlier results (agreement, replication) find them here, in run order
    data.extra["findings"] = findings
    for spec in specs:
        params = dict(plan.params.get(spec.name, spec.params)) if plan else dict(spec.params)
        est = plan.seconds.get(spec.name) if plan else None
        cost = plan.costs.get(spec.name) if plan else None
        said = f" (estimated {fmt_seconds(est)})" if est is not None else ""
        _log(f"{spec.name} ...{said}")
        bar = Progress(spec.name, cost.images() if cost else len(data)) if rank == 0 else Progress(spec.name, 0, False)
        t0 = time.perf_counter()
        try:
            analysis = build_analysis(spec.name, **params)
            torch.manual_seed(cfg.seed)
            with _count_non_finite(subject) as bad, count_generator(subject, on_images=bar) as passes:
                finding = analysis.run(subject, data)
            if bad[1] and bad[0] > MAX_NON_FINITE_FRACTION * bad[1]:
                raise NonFiniteOutput(f"{bad[0]} of {bad[1]} generated images hold NaN/Inf (more than "
                                      f"{MAX_NON_FINITE_FRACTION:.0%}); the model's outputs are not finite")
        except Exception as e:   # never KeyboardInterrupt / SystemExit: finished work is kept, the report written
            failed.append(spec.name)
            finding = Finding.skip(spec.name, f"failed: {type(e).__name__}: {e}", params)
            _log(f"{spec.name} FAILED after {time.perf_counter() - t0:.1f}s: {type(e).__name__}: {e}",
                 every_rank=True)
            if os.environ.get("INTERP_GAN_DEBUG"):
                traceback.print_exc()
            passes = None
        finally:
            bar.close()
        dt = time.perf_counter() - t0
        finding.provenance = {**provenance(**base_prov, analysis_params=params),
                              **finding.provenance, "seconds": round(dt, 2),
                              "data_fingerprint": data.fingerprint}   # the report's: `report` re-renders it
        if est is not None:
            finding.provenance["estimated_seconds"] = round(est, 2)
        if passes is not None:
            finding.provenance["generator_images"] = dict(passes)
        if spec.name in failed:
            pass  # already said, with the error
        elif finding.skipped:
            _log(f"{spec.name} skipped after {dt:.1f}s: {finding.skipped}")
        else:
            _log(f"{spec.name} done in {dt:.1f}s{said}")
        findings[spec.name] = finding
    order = [s.name for s in cfg.analyses]
    return ({n: findings[n] for n in order if n in findings},
            sorted(failed, key=order.index))


def write_report_for(subject: Subject, findings: dict[str, Finding], out_dir: Path, name: str,
                     extra_meta: dict | None = None, paper: bool = True) -> Path:
    from interp_gan.reporting import ReportContext, write_report

    meta = {k: v for k, v in subject.meta.items()}
    meta.update(extra_meta or {})
    ctx = ReportContext(name=name, meta=meta, findings=findings, style_names=subject.style_names)
    return write_report(Path(out_dir), findings, ctx, paper=paper)


def analyze(checkpoint: str | Path, cfg: PipelineConfig, out_dir: str | Path | None = None,
            data: str | None = None, device: str | None = None,
            onnx_options: dict | None = None, paper: bool = True) -> tuple[Path, list[str]]:
    """Load the subject, build the data, run the analyses, write the report. Returns (report dir, failed).
    ``onnx_options``: an ``.onnx`` subject's sidecar keys (``interp_gan.subject.onnx``). ``paper=False``:
    no ``paper/`` exports (``--over-steps`` writes them once, for the final step).

    Under torchrun call it on every rank: only rank 0 writes the report (module docstring)."""
    for spec in cfg.analyses:  # config errors (unknown names, bad parameters) before any work is done
        build_analysis(spec.name, **spec.params)
    out = Path(out_dir or f"reports/{cfg.name}")
    if rank_and_world()[0] == 0:
        check_out_dir(out)     # a file, unwritable, or not a report folder: said before any work
    subject = load_subject(checkpoint, device=device or cfg.device, onnx_options=onnx_options)
    _log(f"subject: {type(subject.generator).__name__} with styles {subject.style_names} on {subject.device}")
    if cfg.feature_net:
        use_feature_net(subject, cfg.feature_net)
        _log(f"feature net for Gram distances: {cfg.feature_net} (pipeline feature_net)")
    elif subject.feature_net is None and subject.meta.get("feature_net_missing"):
        _log(f"no feature net, Gram distances are not measured: {subject.meta['feature_net_missing']} "
             f"(set feature_net in the pipeline to use another)")
    cfg = _fit_image_size(subject, cfg)
    said = probe_module_subject(subject, cfg.image_size, cfg.seed)   # --model: how it is read, said once
    probe_layers(subject, cfg.image_size, cfg.seed)     # each layer's calls per forward and output layout
    left = [n for n in default_layer_notes(subject.generator) if n not in (subject.meta.get("model_notes") or [])]
    if left:                                              # 1x1 gates, reused modules, tokens: said once, at the top
        subject.meta = {**subject.meta, "model_notes": [*(subject.meta.get("model_notes") or []), *left]}
    for line in said + [n for n in subject.meta.get("model_notes") or [] if n not in said]:   # what was assumed
        _log(f"model: {line}")
    adata = analysis_data(subject, cfg, data or cfg.data)
    _log(f"data: {len(adata)} content images at {cfg.image_size}px, "
         f"{0 if adata.style_images is None else len(adata.style_images)} real style images")
    if cfg.classifiers == "auto" and subject.classifier is None and subject.texture_classifier is None:
        attach_classifiers(subject, adata, cfg.image_size)
    if rank_and_world()[0] == 0:   # a report folder belongs to one subject and one data set
        check_report_owner(out, subject.meta.get("checkpoint_sha256", ""), adata.fingerprint, subject.meta)
    adata = _to_device(adata, subject.device)
    plan = plan_analyses(subject, adata, cfg)
    adata.extra["unit_costs"] = plan.unit          # analyses that size themselves price their work with it
    _log(plan.table() + ("\n" + plan.budget_line(cfg.budget_s) if cfg.budget_s else ""))
    findings, failed = run_analyses(subject, adata, cfg, plan)
    if rank_and_world()[0] != 0:
        return out, failed
    _log("estimate vs actual (seconds per analysis):\n" + comparison_table(
        plan.seconds, {n: float(f.provenance.get("seconds", 0.0)) for n, f in findings.items()}))
    report = write_report_for(subject, findings, out, out.name,
                              {"data_fingerprint": adata.fingerprint, "pipeline": cfg.to_dict(),
                               "skipped_images": adata.extra.get("skipped_images", {}),
                               "skipped_files": adata.extra.get("skipped_files", []),
                               "data_notes": adata.extra.get("data_notes", [])}, paper=paper)
    _log(f"report: {report / 'index.html'}")
    return report, failed
