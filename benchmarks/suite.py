"""Every speed ratio in one run, as one dated table in benchmarks/RESULTS.md.

    python benchmarks/suite.py --device cpu --record            # the CPU ratios, recorded
    python benchmarks/suite.py --device cuda --out $OUT         # what gpu_check.sh runs on a lent GPU
    python benchmarks/suite.py --record-from results.json       # record a table measured elsewhere

Each step is one benchmark script run as a subprocess with the settings below (per device); its
``RESULT {json}`` lines (benchmarks/_result.py) become the table's rows, its whole output goes to
``<out>/<step>.log``. Steps run in order of importance, each under its own time limit, and the
run stops starting new steps when ``--deadline-s`` would be passed: a step not run is a row
saying so, never a missing row. Ratios are measured inside each script in one process (ours
against the plain forward pass on the same images, interleaved), so they carry across machines
better than seconds; seconds are in the settings column.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# (step name, script and arguments, time limit in seconds). CUDA: sizes the issue names (128 and
# 256 px; enough images that a GPU forward of a few ms is not all fixed cost). CPU: the sizes the
# CPU goals were set at, one thread per process for steady ratios on shared cores.
STEPS = {
    "cuda": [
        ("dissection_128", ["dissection_cost.py", "--device", "cuda", "--size", "128", "--n", "256", "--batch", "32",
                            "--skip-memory"], 150),
        ("dissection_256", ["dissection_cost.py", "--device", "cuda", "--size", "256", "--n", "256", "--batch", "32",
                            "--skip-memory"], 180),
        ("harvest_256", ["harvest_overhead.py", "--device", "cuda", "--size", "256", "--n", "256", "--batch", "32"], 90),
        ("attribution", ["attribution_cost.py", "--devices", "cuda", "--sizes", "128", "256", "--batch", "16"], 90),
        ("train_gpu256", ["train_throughput.py", "--recipe", "training/gpu256.toml", "--sizes", "--iters", "20"], 120),
        ("profile_256", ["profile_dissection.py", "--device", "cuda", "--size", "256", "--n", "64", "--batch", "32"],
         120),
        ("pipeline_demo", ["@demo_checkpoint", "--device", "cuda"], 300),
        ("pipeline_cyclegan_256", ["full_pipeline_cost.py", "--device", "cuda", "--size", "256", "--blocks", "9"], 400),
    ],
    "cpu": [
        ("dissection_64", ["dissection_cost.py", "--size", "64", "--n", "32", "--threads", "1", "--skip-memory"], 300),
        ("dissection_128", ["dissection_cost.py", "--size", "128", "--n", "16", "--threads", "1", "--skip-memory"],
         300),
        ("harvest_64", ["harvest_overhead.py", "--size", "64", "--n", "32"], 120),
        ("attribution", ["attribution_cost.py", "--devices", "cpu", "--sizes", "64", "--threads", "1"], 180),
        ("train_demo", ["train_throughput.py", "--recipe", "training/demo.toml", "--iters", "5", "--threads", "1"],
         180),
        ("onnx", ["onnx_overhead.py", "--size", "128", "--n", "16", "--threads", "1"], 300),
    ],
}
PIPELINE_STEPS = {"pipeline_demo", "pipeline_cyclegan_256"}


def machine(device: str) -> str:
    import torch
    if device.startswith("cuda") and torch.cuda.is_available():
        card = torch.cuda.get_device_name()
        return f"{card}; torch {torch.__version__}, CUDA {torch.version.cuda}"
    cpu = platform.processor() or "CPU"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__} (CPU)"


def _demo_checkpoint(device: str, out: Path, limit: float, rehearse: bool) -> list[str]:
    """Train the demo recipe on the device (once), then the thorough pipeline on it."""
    run_dir = out / "demo_run"
    ckpt = run_dir / "checkpoint.safetensors"
    if not ckpt.exists():
        short = ["--set", "train.steps=20", "--set", "train.eval_every=20", "--set", "train.sample_every=20",
                 "--set", "train.clf_steps=20"] if rehearse else []
        with open(out / "pipeline_demo_train.log", "w") as log:
            subprocess.run([sys.executable, "-m", "interp_gan.cli", "train", "training/demo.toml", "--device",
                            "cpu" if rehearse else device, "--out", str(run_dir), *short], cwd=ROOT, check=True,
                           timeout=limit, stdout=log, stderr=subprocess.STDOUT)
    return ["full_pipeline_cost.py", "--checkpoint", str(ckpt), "--device", device]


def _rehearsal(args: list[str]) -> list[str]:
    """The CUDA step's arguments shrunk to run on a CPU in seconds: same scripts, same options."""
    small = {"--size": "32", "--n": "8", "--batch": "4", "--iters": "1", "--n-perm": "50", "--n-boot": "20"}
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a in ("cuda",):
            out.append("cpu")
        elif a in small and i + 1 < len(args):
            out += [a, small[a]]
            i += 1
        elif a == "--sizes" and i + 1 < len(args) and args[i + 1].isdigit():
            out += ["--sizes", "32"]
            while i + 1 < len(args) and args[i + 1].isdigit():
                i += 1
        else:
            out.append(a)
        i += 1
    if "full_pipeline_cost.py" in out[0]:
        out += ["--set", "n_images=32", "--set", "budget_s=60", "--size", "32"]
    if any(x in out[0] for x in ("dissection_cost.py", "profile_dissection.py")):
        out += ["--n-perm", "50", "--n-boot", "20"]
    return out


def run_steps(device: str, out: Path, deadline_s: float, only: set[str], pipelines: bool,
              rehearse: bool = False) -> list[dict]:
    rows, t_start = [], time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    for name, args, limit in STEPS["cuda" if device.startswith("cuda") else "cpu"]:
        if (only and name not in only) or (name in PIPELINE_STEPS and not pipelines):
            continue
        left = deadline_s - (time.monotonic() - t_start)
        if left < 20:
            rows.append({"benchmark": name, "metric": "not run: the suite's deadline had passed", "value": None,
                         "goal": None, "met": None, "settings": {}})
            continue
        t0 = time.monotonic()
        log = out / f"{name}.log"
        print(f"== {name} (limit {min(limit, left):.0f} s)", flush=True)
        try:
            if args[0] == "@demo_checkpoint":
                args = _demo_checkpoint(device, out, min(limit, left), rehearse)
            if rehearse:
                args = _rehearsal(args)
            left = deadline_s - (time.monotonic() - t_start)
            res = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], cwd=ROOT, env=env, text=True,
                                 capture_output=True, timeout=max(min(limit, left), 1))
            text, status = res.stdout + res.stderr, (f"exit {res.returncode}" if res.returncode else "")
        except subprocess.TimeoutExpired as e:
            text = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            status = f"stopped at its {min(limit, left):.0f} s limit"
        except subprocess.CalledProcessError as e:
            text, status = "", f"training the demo checkpoint failed (exit {e.returncode})"
        log.write_text(text)
        found = [json.loads(ln[len("RESULT "):]) for ln in text.splitlines() if ln.startswith("RESULT ")]
        for r in found:
            r["settings"]["step"] = name
        rows += found
        if status or not found:
            rows.append({"benchmark": name, "metric": f"FAILED: {status or 'no result line'} (see {log.name})",
                         "value": None, "goal": None, "met": None, "settings": {"step": name}})
        print(f"   {len(found)} result(s), {time.monotonic() - t0:.0f} s{'; ' + status if status else ''}", flush=True)
    return rows


def _value(r: dict) -> str:
    v = r["value"]
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}"


def _settings(r: dict) -> str:
    s = {k: v for k, v in r["settings"].items() if k not in ("step", "all", "device")}
    return ", ".join(f"{k} {v}" for k, v in s.items())[:160]


def table(meta: dict, rows: list[dict]) -> str:
    lines = [f"## {meta['date']}: {meta['device']} ({meta['machine']})", "",
             f"Load average {meta['load_before']:.2f} before, {meta['load_after']:.2f} after; "
             f"`python benchmarks/suite.py --device {meta['device']}`, {meta['seconds']:.0f} s in all.", "",
             "| benchmark | measured | value | goal | met | settings |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        lines.append(f"| {r['benchmark']} | {r['metric']} | {_value(r)} | {r['goal'] or ''} | {met} | {_settings(r)} |")
    return "\n".join(lines) + "\n"


def record(md: Path, section: str) -> None:
    """Insert the dated section into RESULTS.md, replacing one with the same title."""
    title = section.splitlines()[0]
    text = md.read_text() if md.exists() else "# Benchmark results\n\n"
    parts = text.split("\n## ")
    head, rest = parts[0], ["## " + p for p in parts[1:]]
    rest = [p for p in rest if p.splitlines()[0] != title]
    md.write_text(head.rstrip("\n") + "\n\n" + section + "".join("\n" + p.rstrip("\n") + "\n" for p in rest))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", default="", help="logs and results.json (default: a folder under /tmp)")
    ap.add_argument("--deadline-s", type=float, default=3600, help="start no step after this many seconds")
    ap.add_argument("--only", nargs="*", default=[], help="run only these steps")
    ap.add_argument("--pipelines", action="store_true", help="also the thorough-pipeline wall times (default on CUDA)")
    ap.add_argument("--record", action="store_true", help="write the table into benchmarks/RESULTS.md")
    ap.add_argument("--record-from", default="", help="record a results.json written by another run, and stop")
    ap.add_argument("--rehearse", action="store_true",
                    help="run the CUDA steps on the CPU at tiny sizes: checks the scripts and options, measures nothing")
    a = ap.parse_args()
    md = HERE / "RESULTS.md"
    if a.record_from:
        got = json.loads(Path(a.record_from).read_text())
        record(md, table(got["meta"], got["rows"]))
        print(f"recorded {len(got['rows'])} rows from {a.record_from} in {md}")
        return
    out = Path(a.out or f"/tmp/interp_gan_suite_{'rehearsal' if a.rehearse else a.device}")
    out.mkdir(parents=True, exist_ok=True)
    load0, t0 = os.getloadavg()[0], time.monotonic()
    if a.rehearse:
        a.device = "cuda"
    rows = run_steps(a.device, out, a.deadline_s, set(a.only), a.pipelines or a.device == "cuda", a.rehearse)
    meta = {"date": dt.date.today().isoformat(), "device": "rehearsal (cpu)" if a.rehearse else a.device,
            "machine": machine("cpu" if a.rehearse else a.device),
            "load_before": load0, "load_after": os.getloadavg()[0], "seconds": time.monotonic() - t0}
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    section = table(meta, rows)
    (out / "results.md").write_text(section)
    print("\n" + section)
    if a.record and not a.rehearse:
        record(md, section)
        print(f"recorded in {md}")


if __name__ == "__main__":
    main()
