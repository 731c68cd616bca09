"""``interp-gan analyze runs/NAME --over-steps``: one pipeline on every kept training step (docs/dynamics.md).

    report, failed = analyze_over_steps("runs/demo-dynamics", load_pipeline("analyses/dynamics.toml"))

The run's final ``checkpoint.safetensors`` is analysed into the report folder itself (the usual
report of the model, ``pipeline.analyze``), each snapshot that ``train.keep_every`` kept
(``steps/step_000300.safetensors``, ``checkpoint.list_snapshots``) into ``<report>/steps/step_000300/``
with the same pipeline, data and seeds. Then one more pass per step over the same fixed images
collects the unit activations for tracking units across steps and the independent classifiers'
accuracy (``analyses/dynamics.collect_step``; the final checkpoint's classifiers judge every step),
``analyses/dynamics.build_dynamics`` turns it all into the ``dynamics`` Finding, and the report is
written again with it: the section "Training dynamics", ``findings/dynamics*.csv`` and
``<report>/dynamics.csv``.
"""
from __future__ import annotations

import json
from pathlib import Path

from interp_gan.checkpoint import list_snapshots, read_metadata
from interp_gan.config import PipelineConfig
from interp_gan.findings import Finding

__all__ = ["analyze_over_steps", "find_steps", "step_folder"]


def step_folder(report: Path, step: int) -> Path:
    return Path(report) / "steps" / f"step_{int(step):06d}"


def find_steps(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, checkpoint) of every kept step of ``run_dir``, the final checkpoint last (a snapshot of
    the final step gives way to it); one clear line when there is nothing to follow."""
    run = Path(run_dir)
    if run.is_file():
        raise ValueError(f"--over-steps takes a run directory (runs/NAME, holding steps/step_*.safetensors), "
                         f"got the file {run}")
    if not run.is_dir():
        raise FileNotFoundError(f"--over-steps: no such run directory: {run}")
    snaps = list_snapshots(run)
    final = run / "checkpoint.safetensors"
    if not snaps:
        raise ValueError(f"{run} has no step snapshots ({run / 'steps'}/step_*.safetensors); expected a run "
                         f"trained with train.keep_every > 0, e.g. interp-gan train RECIPE --set "
                         f"train.keep_every=300 (or make demo-dynamics)")
    steps = dict(snaps)
    if final.is_file():
        last = int(read_metadata(final).get("step", -1))
        steps = {s: p for s, p in steps.items() if s < last}     # later ones belong to no finished run
        steps[last] = final
    if len(steps) < 2:
        raise ValueError(f"{run} has {len(steps)} kept step ({', '.join(map(str, steps))}); expected at least 2 "
                         f"to follow training (train with a smaller train.keep_every)")
    return sorted(steps.items())


def _read_metrics(run: Path) -> list[dict]:
    p = run / "metrics.jsonl"
    rows = []
    if p.is_file():
        for line in p.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue   # a line cut by a kill
    return rows


def _load_findings(report: Path) -> dict[str, Finding]:
    fdir = report / "findings"
    return {p.name: Finding.load(p) for p in sorted(fdir.iterdir())
            if (p / "finding.json").is_file() and p.name != "dynamics"} if fdir.is_dir() else {}


def _tracked_layers(subject, cfg: PipelineConfig) -> list[str]:
    """The layers whose units are tracked: the pipeline's style_units layers (its default ones when unset)."""
    from interp_gan.harvest.hooks import default_layers, resolve_layers

    spec = next((s for s in cfg.analyses if s.name == "style_units"), None)
    if spec is None:
        return []
    layers = spec.params.get("layers")
    G = subject.generator
    return resolve_layers(G, layers) if layers is not None else default_layers(G)


def analyze_over_steps(run_dir: str | Path, cfg: PipelineConfig, out_dir: str | Path | None = None,
                       data: str | None = None, device: str | None = None, top_k: int = 2,
                       paper: bool = True) -> tuple[Path, list[str]]:
    """Analyse every kept step of ``run_dir`` with ``cfg`` and add the dynamics (module docstring).
    Returns (report dir, failed analyses, each as ``step N: name``). The step reports have no ``paper/``
    (its figure exports cost more than a small step's analyses); the final report has one unless ``paper=False``."""
    from interp_gan.analyses.dynamics import StepRecord, build_dynamics, collect_step
    from interp_gan.guards import read_json
    from interp_gan.pipeline import _log, _to_device, analysis_data, analyze
    from interp_gan.reporting import ReportContext, write_report
    from interp_gan.subject.loading import load_subject

    run = Path(run_dir)
    steps = find_steps(run)
    out = Path(out_dir or f"reports/{run.name}")
    final_step, final_ckpt = steps[-1]
    _log(f"over steps: {len(steps)} kept steps of {run} ({', '.join(str(s) for s, _ in steps)}) -> {out}")
    failed: list[str] = []
    folders: dict[int, Path] = {}
    # the final checkpoint first: the report folder is its report (check_out_dir refuses a folder
    # that already holds the snapshots' subfolders but no manifest)
    for step, ckpt in [steps[-1], *steps[:-1]]:
        folder = out if step == final_step else step_folder(out, step)
        _log(f"over steps: step {step} ({ckpt.name}) -> {folder}")
        _, bad = analyze(ckpt, cfg, out_dir=folder, data=data, device=device, paper=False)
        failed += [f"step {step}: {b}" for b in bad]
        folders[step] = folder

    # one pass per step over the same fixed images: unit activations and classifier accuracy
    final = load_subject(final_ckpt, device=device or cfg.device)
    adata = _to_device(analysis_data(final, cfg, data or cfg.data), final.device)
    layers = _tracked_layers(final, cfg)
    seed = int(next((s.params.get("seed", 0) for s in cfg.analyses if s.name == "style_units"), 0))
    judges = {k: c for k, c in (("rgb", final.classifier), ("texture", final.texture_classifier)) if c is not None}
    records = []
    for step, ckpt in steps:
        subject = final if step == final_step else load_subject(ckpt, device=device or cfg.device)
        means, scores = collect_step(subject, adata, layers, seed=seed, classifiers=judges)
        records.append(StepRecord(step, _load_findings(folders[step]), means, scores))
    dyn = build_dynamics(records, top_k=top_k, metrics_rows=_read_metrics(run), n_styles=final.num_styles,
                         groups=adata.style_ids.cpu().numpy(),
                         provenance={"checkpoint_sha256": final.meta.get("checkpoint_sha256", ""),
                                     "data_fingerprint": adata.fingerprint, "pipeline": cfg.to_dict(),
                                     "seed": cfg.seed, "run": str(run),
                                     "checkpoints": {str(s): str(p) for s, p in steps},
                                     "step_reports": {str(s): str(f) for s, f in folders.items()}})

    # the report again, with the dynamics (as `interp-gan report` re-renders a saved report)
    manifest = read_json(out / "manifest.json", "report manifest")
    findings = {**_load_findings(out), "dynamics": dyn}
    ctx = ReportContext(name=out.name, meta=manifest.get("meta", {}), findings=findings,
                        style_names=manifest.get("style_names", []))
    write_report(out, findings, ctx, paper=paper)
    if not dyn.skipped:
        dyn.tables["dynamics"].to_csv(out / "dynamics.csv", index=False)
    _log(f"over steps: {out / 'dynamics.csv'} and the section 'Training dynamics' in {out / 'index.html'}")
    return out, failed

