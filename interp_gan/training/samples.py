"""Sample grids written during training (to look at, not to measure).

    save_sample_grid(G_ema, data, Path("runs/demo/samples/step_000500.png"), size=64)

Layout: the top row shows one real image of each style (first cell blank); every other row is
one content photo followed by its stylisation into each style (fixed z, so grids from
different steps are comparable).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from interp_gan.provenance_mark import save_marked_image
from interp_gan.util import to_uint8
from interp_gan.training.sampling import centre_crop_batch, per_style_index

__all__ = ["save_sample_grid", "to_uint8", "weights_sha256"]


@torch.no_grad()
def save_sample_grid(G, data, path: Path, size: int, n_content: int = 4, seed: int = 0, pad: int = 2) -> Path:
    num_styles = len(data.style_names)
    device = next(G.parameters()).device
    content = centre_crop_batch(data.content[:n_content], size)
    by_style = per_style_index(data.style_labels.long(), num_styles)
    real = centre_crop_batch(data.style[torch.stack([ix[0] for ix in by_style])], size)
    z = torch.randn(len(content), G.latent_dim, generator=torch.Generator().manual_seed(seed))
    rows = [torch.cat([torch.full((1, 3, size, size), 1.0), real])]
    for i in range(len(content)):
        c = content[i:i + 1].expand(num_styles, -1, -1, -1).to(device)
        out = G.generate(c, torch.arange(num_styles, device=device), z[i:i + 1].expand(num_styles, -1).to(device))
        rows.append(torch.cat([content[i:i + 1], out.float().cpu()]))
    tiles = to_uint8(torch.cat(rows))                       # [(n+1)*(S+1), H, W, 3]
    ncols, nrows = num_styles + 1, len(rows)
    grid = np.full((nrows * (size + pad) + pad, ncols * (size + pad) + pad, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, ncols)
        grid[pad + r * (size + pad):pad + r * (size + pad) + size, pad + c * (size + pad):pad + c * (size + pad) + size] = tile
    # marked as made by a trained model; no checkpoint file exists yet, so the hash is of G's weights
    return save_marked_image(grid, path, weights_sha256(G), format="PNG",
                             sha256_of="generator weights (state_dict tensors, this step)")


def weights_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's state_dict: names, dtypes, shapes and bytes, in order."""
    import hashlib
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
