"""How far a TorchScript subject (its in-memory ONNX export, converted) is from the TorchScript module.

    d = torchscript_max_abs_diff(module, subject, content, style_ids)    # [-1, 1] output units
    lines = torchscript_report(path, subject, size, sample)               # what `interp-gan inspect` prints

The module is fed and read through the subject's own input contract (range, layout, style vector),
one image per call, so the difference is the conversion's alone. ``TS_TOLERANCE`` = 1e-3, as for
ONNX files (``onnx_check``); measured 0 to 1e-6 on random-weight CycleGAN generators (ngf 64, 9
blocks, scripted and traced) and U-Nets.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from interp_gan.subject.onnx_contract import RANGES
from interp_gan.subject.protocol import Subject
from interp_gan.subject.torchscript_export import load_module

__all__ = ["TS_TOLERANCE", "torchscript_max_abs_diff", "torchscript_report", "check_content", "check_ids"]

TS_TOLERANCE = 1e-3       # subject vs the TorchScript module, [-1, 1] output units


def torchscript_max_abs_diff(m, subject: Subject, content: Tensor, style_ids: Tensor | None = None) -> float:
    """max |subject.generate - the TorchScript module| over ``content`` ([N,3,H,W] in [-1,1]), the module fed
    and read through the subject's input contract (range, layout, style vector), one image per call."""
    c = subject.meta["input_contract"]
    lo, hi = RANGES[c["range"]]
    out_lo, out_hi = RANGES[c["output_range"]]
    ts = subject.meta["torchscript"]
    ids = torch.zeros(len(content), dtype=torch.long) if style_ids is None else style_ids.long().cpu()
    with torch.no_grad():
        ours = subject.generate(content.to(subject.device), ids.to(subject.device)).float().cpu()
        diffs = []
        for i in range(len(content)):
            x = (content[i:i + 1].float().cpu() + 1) / 2 * (hi - lo) + lo
            if c["layout"] == "NHWC":
                x = x.permute(0, 2, 3, 1)
            args = [x]
            if "style_input" in c:
                code = subject.style_code(ids[i:i + 1].to(subject.device), None).float().cpu()
                args.append(code.reshape(ts["style_shape"] if len(ts["style_shape"]) == 1 else [1, *ts["style_shape"][1:]]))
                if ts["image_index"] == 1:
                    args.reverse()
            y = m(*args)
            y = y[0] if isinstance(y, (tuple, list)) else y
            y = y.permute(0, 3, 1, 2) if c["layout"] == "NHWC" else y
            y = y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y   # a grayscale output, as the runner repeats it
            y = (y.float() - out_lo) / (out_hi - out_lo) * 2 - 1
            if "output_clamped" in c:
                y = y.clamp(-1, 1)
            if y.shape != ours[i:i + 1].shape:
                return float("inf")
            diffs.append(float((y - ours[i:i + 1]).abs().max()))
    return max(diffs)


def check_content(size: tuple[int, int], n: int = 2) -> Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, *size, generator=g) * 2 - 1


def check_ids(subject: Subject) -> Tensor:
    return torch.tensor([0, subject.num_styles - 1])


def torchscript_report(path: str | Path, subject: Subject, size: int, sample: str | Path) -> list[str]:
    """What ``interp-gan inspect`` prints for a TorchScript subject: the subject against the module itself
    on two images (the sample photo and a seeded random one), how it was exported, the contract, the sample."""
    from interp_gan.subject.onnx_check import contract_lines, sample_content

    ts = subject.meta["torchscript"]
    g = torch.Generator().manual_seed(0)
    x = torch.cat([sample_content(size), torch.rand(1, 3, size, size, generator=g) * 2 - 1])
    ids = check_ids(subject)
    d = torchscript_max_abs_diff(load_module(Path(path)), subject, x, ids)
    ok = "ok" if d <= TS_TOLERANCE else "MISMATCH"
    h, w = ts["export_size"]
    lines = [f"TorchScript check (the sample photo and a random image, {size}x{size}, styles {ids.tolist()}): "
             f"{d:.2e} max abs diff vs the TorchScript module, [-1,1] output units (tolerance {TS_TOLERANCE:g}): {ok}",
             f"exported to ONNX in memory with {subject.meta['model']['exported']} from a {subject.meta['model']['module']} "
             f"module at {h}x{w}; size {ts['size']}"
             + (f" ({ts['size_baked_in']})" if ts.get("size_baked_in") else "")
             + (f"; {ts['dead_nodes_dropped']} nodes nothing reads dropped" if ts["dead_nodes_dropped"] else "")]
    if "style_input" in subject.meta["input_contract"]:
        lines.append(f"style input: {subject.meta['input_contract']['style_input']!r}, "
                     f"{subject.meta['input_contract'].get('style_space', '')}")
    return lines + contract_lines(subject, size, sample)
