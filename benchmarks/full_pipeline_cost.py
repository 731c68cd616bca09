"""The thorough pipeline (analyses/full.toml) on a model nobody configured: seconds per analysis.

    python benchmarks/full_pipeline_cost.py                      # 9 blocks, 64 channels, 128 px, CPU
    python benchmarks/full_pipeline_cost.py --estimate-only      # the printed estimate alone (seconds)
    python benchmarks/full_pipeline_cost.py --set budget_s=0     # full.toml's sizes without its budget
    python benchmarks/full_pipeline_cost.py --checkpoint runs/demo/checkpoint.safetensors --size 64

The subject is a CycleGAN ResNet generator (Zhu et al. 2017) with random weights in the reference
layout (``model.1.weight``, ``model.10.conv_block.1.weight``, ...; 11.4 M parameters at 9 blocks
and 64 channels), saved as a ``.pth`` and loaded the way a user's file is (``load_subject``): one
style, no latent, no discriminator, no classifiers, no layer named anywhere. Goal: the whole
pipeline within 10 minutes on 2 CPU cores, every analysis run or skipped with its reason.

Prints the pipeline's own estimate table and progress lines, then one row per analysis (status,
seconds, estimated seconds, generator images) and the total, with the load average (1 min)
before and after: the seconds follow the machine (compare them only on an unloaded one); the
estimate / actual ratio is what carries over. ``--checkpoint`` analyses that file instead (e.g. the
demo's trained StyleNet, which also has a discriminator and a latent style space).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))
from _result import emit  # noqa: E402

from interp_gan.analyses.cost import fmt_seconds  # noqa: E402
from interp_gan.config import load_pipeline  # noqa: E402
from interp_gan.models.cyclegan import CycleGANGenerator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipeline", default=str(ROOT / "analyses" / "full.toml"))
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--blocks", type=int, default=9)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--set", action="append", default=[], help="pipeline overrides, as interp-gan analyze --set")
    ap.add_argument("--estimate-only", action="store_true", help="print the estimate and stop")
    ap.add_argument("--checkpoint", default="", help="analyse this file instead of a random-weight CycleGAN")
    ap.add_argument("--out", default="", help="report directory (default: a temporary one)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = load_pipeline(a.pipeline, [f"image_size={a.size}", f"device={a.device}", *a.set])
    tmp = tempfile.TemporaryDirectory()
    if a.checkpoint:
        pth = Path(a.checkpoint)
        what = f"checkpoint {pth}"
    else:
        torch.manual_seed(0)
        G = CycleGANGenerator(ngf=a.ngf, n_blocks=a.blocks)
        pth = Path(tmp.name) / "latest_net_G_A.pth"
        torch.save(G.state_dict(), pth)
        n_params = sum(p.numel() for p in G.parameters())
        what = f"CycleGAN generator {a.blocks} blocks x {a.ngf} channels ({n_params / 1e6:.1f} M parameters)"
    load0 = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, load average "
          f"{load0:.2f}; {what}, {cfg.image_size} px, {cfg.n_images} images, batch {cfg.batch_size}, {Path(a.pipeline).name}"
          f"{' budget_s ' + fmt_seconds(cfg.budget_s) if cfg.budget_s else ''}", flush=True)

    from interp_gan.pipeline import analysis_data, analyze, plan_analyses, _to_device
    from interp_gan.subject.loading import load_subject
    if a.estimate_only:
        subject = load_subject(pth, device=a.device)
        data = _to_device(analysis_data(subject, cfg, cfg.data), subject.device)
        plan = plan_analyses(subject, data, cfg)
        print(plan.table())
        for n, c in plan.costs.items():
            for note in c.notes:
                print(f"  {n}: {note}")
        return
    t0 = time.perf_counter()
    report, failed = analyze(pth, cfg, out_dir=a.out or Path(tmp.name) / "report", device=a.device)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()[0]

    import json
    found = json.loads((Path(report) / "findings.json").read_text())
    rows = found["findings"] if isinstance(found, dict) and "findings" in found else found
    rows = rows if isinstance(rows, list) else list(rows.values())
    print(f"\n{'analysis':26} {'status':8} {'seconds':>9} {'estimated':>10} {'G images':>9}  reason / cuts")
    total = 0.0
    for f in rows:
        p = f.get("provenance", {})
        secs = float(p.get("seconds", 0.0))
        total += secs
        status = "FAILED" if f["analysis"] in failed else ("skipped" if f.get("skipped") else "ran")
        imgs = sum((p.get("generator_images") or {}).values())
        why = f.get("skipped") or "; ".join(n for n in f.get("notes", []) if n.startswith("budget"))
        print(f"{f['analysis']:26} {status:8} {secs:9.1f} {p.get('estimated_seconds', float('nan')):10.1f} "
              f"{imgs:9d}  {why[:160]}")
    print(f"{'analyses':26} {'':8} {total:9.1f}\n{'whole run (load, data, report)':30} {wall:5.1f} s = "
          f"{fmt_seconds(wall)}; load average {load0:.2f} before, {load1:.2f} after; goal: within 10 min on 2 cores, "
          f"every analysis ran or skipped with a reason ({'met' if wall <= 600 and not failed else 'NOT met'})")
    subject_name = pth.name if a.checkpoint else f"CycleGAN {a.blocks} blocks x {a.ngf}"
    emit("full_pipeline_cost", f"{Path(a.pipeline).name} wall seconds, {subject_name}, {cfg.image_size} px", wall,
         "<= 600 and none failed", met=wall <= 600 and not failed, device=a.device, size=cfg.image_size, n_images=cfg.n_images, failed=sorted(failed),
         analyses_s=round(total, 1), load_before=round(load0, 2), load_after=round(load1, 2))


if __name__ == "__main__":
    main()
