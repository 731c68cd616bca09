"""One style code per style of a style set: the mean, over a style's images, of what a style encoder gives.

    names, codes, counts = style_set_codes(encoder, "embedded", ["lite01", "lite17"])   # codes [S, D]
    names, codes, counts = style_set_codes(encoder, "STYLE_DIR")      # STYLE_DIR/<style>/*.png, every style

``encoder`` is any callable ``images [N,3,H,W] in [-1,1] -> [N, D]`` with a ``size`` attribute: ``(H, W)``
to read the images at (square: H is used), or None for 256. Magenta's style predictor (an ONNX network,
``onnx_predictor``) and pytorch-AdaIN's VGG statistics (``subject/adain.py``) are two.

``style_set`` is ``"embedded"`` (interp_gan's offline set, built on first use; ``styles`` picks some, all
29 by default) or a folder with one subfolder of images per style (``styles`` picks some, all by
default). Images are read as ``load_data`` reads them: the shorter side scaled to the size, the centre
square kept; an unreadable image is skipped and counted by reason (``skipped``, for the model notes); more
than ``MAX_BAD`` (20%) of a style's files, or none readable, is one line naming the style set and the style.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

__all__ = ["style_set_codes", "style_folders", "MAX_BAD", "skipped_note"]

MAX_BAD = 0.2      # the share of a style's files that may be unreadable


def style_folders(style_set: str, styles: list[str] | None) -> dict[str, Path]:
    """{style name: its folder} of a style set (module docstring); one line for an unknown style."""
    if style_set == "embedded":
        from interp_gan.data.embedded import check_styles, ensure_embedded

        names = check_styles(styles or ())
        root = ensure_embedded(names)
        return {n: root / "style" / n for n in names}
    from interp_gan.data.folders import select_styles, style_subfolders

    return select_styles(style_subfolders(style_set), styles, where=style_set)


def skipped_note(skipped: dict[str, int]) -> str:
    """The model note for the style-set images ``style_set_codes`` skipped ("" for none)."""
    if not skipped:
        return ""
    return (f"style set: {sum(skipped.values())} unreadable image(s) skipped "
            f"({', '.join(f'{k} {v}' for k, v in sorted(skipped.items()))}); "
            "each style's code is the mean over the others")


def style_set_codes(encoder, style_set: str, styles: list[str] | None = None, batch_size: int = 16,
                    skipped: dict[str, int] | None = None) -> tuple[list[str], Tensor, list[int]]:
    """(style names, codes [S, D] = the mean encoded vector over each style's images, image counts);
    ``skipped`` (optional) gathers the unreadable images' counts by reason."""
    from interp_gan.data.folders import STYLE_LAYOUT, images_in
    from interp_gan.data.images import read_files
    from interp_gan.data.transforms import resize_square, to_tensor

    size = encoder.size[0] if encoder.size else 256
    names, codes, counts = [], [], []
    for name, folder in style_folders(style_set, styles).items():
        paths = images_in(folder, f"style {name!r}", STYLE_LAYOUT)
        where = f"style {name!r} of the style set ({folder})"
        try:      # the share is judged here: read_files' advice (max_bad_fraction) does not reach a style set
            scan = read_files(paths, 1.0, transform=lambda img: resize_square(img, size))   # resized as read
        except ValueError:
            raise ValueError(f"{where}: none of its {len(paths)} image file(s) could be read; remove or re-export "
                             "them") from None
        if len(scan.bad) > MAX_BAD * scan.tried:
            counts_ = ", ".join(f"{k} {v}" for k, v in sorted(scan.skipped.items()))
            raise ValueError(f"{where}: {len(scan.bad)} of {scan.tried} images could not be read ({counts_}; e.g. "
                             f"{scan.bad[0]}), more than {MAX_BAD:.0%}; remove or re-export the bad files")
        for k, v in scan.skipped.items():
            if skipped is not None:
                skipped[k] = skipped.get(k, 0) + v
        imgs = [img for _, img, _ in scan.good]
        total = None
        with torch.no_grad():
            for i in range(0, len(imgs), batch_size):
                v = encoder(to_tensor(imgs[i:i + batch_size])).sum(0)
                total = v if total is None else total + v
        names.append(name)
        codes.append(total / len(imgs))
        counts.append(len(imgs))
    return names, torch.stack(codes), counts
