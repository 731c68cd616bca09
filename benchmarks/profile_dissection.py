"""Where a whole dissection spends its time: one torch.profiler trace and one cProfile run.

    python benchmarks/profile_dissection.py [--device cuda] [--size 256] [--n 64] [--top 15]

Same subject, layers and settings as ``dissection_cost.py``. Prints (1) the aten / CUDA ops with
the most self time (device time on CUDA, CPU time otherwise), (2) the host syncs the run made
(``aten::item`` / ``_local_scalar_dense`` calls and device-to-host copies: each stalls the GPU
queue), and (3) the interp_gan functions with the most own Python time (per-image loops show up
here). Run when ``dissection_cost.py`` misses its goal: the three lists name the bottleneck
(sketch compaction, syncs, Python loops, dtype conversions). It also counts the aten ops of the
dissection and of a plain forward over the same images: on a GPU running a small model each op is
a kernel launch of a few microseconds, so that ratio bounds the time ratio from below when the
host, not the card, is the bottleneck. Not a test; nothing is asserted.
"""
from __future__ import annotations

import cProfile
import io
import pstats
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import emit  # noqa: E402
from _subject import LAYERS, arg_parser, build, plain_forward  # noqa: E402

from interp_gan.analyses.units.dissection import Dissection  # noqa: E402

SYNC_OPS = ("aten::item", "aten::_local_scalar_dense", "aten::nonzero", "cudaStreamSynchronize",
            "cudaDeviceSynchronize", "cudaMemcpyAsync")


VIEW_OPS = {"aten::as_strided", "aten::view", "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze",
            "aten::reshape", "aten::_reshape_alias", "aten::permute", "aten::transpose", "aten::t", "aten::expand",
            "aten::_unsafe_view", "aten::alias", "aten::detach", "aten::narrow", "aten::split", "aten::chunk",
            "aten::unbind", "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::resize_", "aten::lift_fresh",
            "aten::resolve_conj", "aten::resolve_neg", "aten::as_strided_", "aten::to", "aten::contiguous",
            "aten::flatten", "aten::view_as", "aten::expand_as", "aten::split_with_sizes", "aten::squeeze_",
            "aten::unsqueeze_", "aten::set_", "aten::result_type", "aten::is_nonzero"}


def _computing_ops(events) -> int:
    """aten ops that compute (launch a kernel on a GPU): views, allocations and dispatch wrappers left out."""
    return sum(e.count for e in events if e.key.startswith("aten::") and e.key not in VIEW_OPS)


def main() -> None:
    ap = arg_parser(repeats=1)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--n-perm", type=int, default=1000)
    ap.add_argument("--n-boot", type=int, default=500)
    a = ap.parse_args()
    cuda = a.device.startswith("cuda")
    subject, data = build(a.n, a.size, a.device, a.batch)

    def run() -> None:
        Dissection(layers=LAYERS, n_perm=a.n_perm, n_boot=a.n_boot, n_show=4).run(subject, data)
        if cuda:
            torch.cuda.synchronize()

    plain_forward(subject, data)
    run()                                               # warm-up: allocator, cudnn autotune, lazy imports
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        run()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    events = prof.key_averages()
    print(f"== torch.profiler: top {a.top} ops by {key} ({a.device}, {a.size} px, {a.n} images)")
    print(events.table(sort_by=key, row_limit=a.top, max_name_column_width=48))
    with profile(activities=acts) as prof_fwd:
        plain_forward(subject, data)
    n_ops, n_fwd = _computing_ops(events), _computing_ops(prof_fwd.key_averages())
    print(f"== computing aten ops (views and allocations left out): dissection {n_ops}, plain forward over the same "
          f"images {n_fwd} ({n_ops / max(n_fwd, 1):.1f}x; where each op is a short kernel, time follows this ratio)")
    emit("profile_dissection", f"computing aten ops: whole dissection / plain forward, {a.size} px",
         n_ops / max(n_fwd, 1), None,
         device=a.device, size=a.size, n=a.n, batch=a.batch, dissection_ops=n_ops, forward_ops=n_fwd)
    syncs = {e.key: e.count for e in events if e.key in SYNC_OPS}
    print("== host syncs and copies (count):", ", ".join(f"{k} {v}" for k, v in sorted(syncs.items())) or "none")
    total = sum(getattr(e, key, 0) for e in events)
    conv = sum(getattr(e, key, 0) for e in events if "conv" in e.key.lower() or "gemm" in e.key.lower())
    if total:
        emit("profile_dissection", f"share of op self time in convolutions (the model), {a.size} px", conv / total,
             None, device=a.device, size=a.size, n=a.n, syncs=syncs)

    pr = cProfile.Profile()
    pr.enable()
    run()
    pr.disable()
    buf = io.StringIO()
    st = pstats.Stats(pr, stream=buf)
    st.sort_stats("tottime").print_stats("interp_gan", a.top)
    print(f"== cProfile: top {a.top} interp_gan functions by own time")
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[-4000:])


if __name__ == "__main__":
    main()
