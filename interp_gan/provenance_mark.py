"""A machine-readable mark on every image interp_gan writes: "made by a trained model".

    save_marked_image(grid_uint8, "runs/demo/samples/step_000500.png", model_sha256=sha)
    data = marked_bytes(Image.fromarray(img), "WEBP", model_sha256=sha)       # inline report images
    read_mark("step_000500.png")   # {'digital_source_type': ..., 'model_sha256': ..., 'tool': ..., ...} | None
    interp-gan inspect step_000500.png

The mark is an XMP packet (Adobe XMP, ISO 16684-1) holding the IPTC Digital Source Type
``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia`` (IPTC Photo Metadata
``Iptc4xmpExt:DigitalSourceType``), ``xmp:CreatorTool`` (tool and version), ``xmp:CreateDate``
and, in the ``interp_gan`` namespace, the model's sha256 and what that hash is of (the checkpoint
file, or the generator's weights for samples drawn during training before any file exists).
Where it goes: PNG, an uncompressed ``iTXt`` chunk with keyword ``XML:com.adobe.xmp``; JPEG, an
APP1 segment ``http://ns.adobe.com/xap/1.0/\\0`` right after SOI; WebP, Pillow's ``xmp`` chunk.

The XMP mark is an unsigned claim: anyone can strip or forge it. A signed C2PA manifest is added
on top when the user sets ``INTERP_GAN_C2PA_KEY`` and ``INTERP_GAN_C2PA_CERT`` (PEM paths) and has
the optional ``c2pa`` extra installed: see ``interp_gan.provenance_c2pa`` (no network either way).

Plain Python + Pillow, no torch (reporting imports it).
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import io
import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["TRAINED_ALGORITHMIC_MEDIA", "IMAGE_SUFFIXES", "xmp_packet", "parse_xmp", "marked_bytes",
           "save_marked_image", "read_mark", "describe_mark", "marking", "current_model", "save_kw_for",
           "mark_jpeg_bytes"]

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
NS = "https://github.com/interp_gan/ns/1.0/"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_XMP_KEY = "XML:com.adobe.xmp"
_JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"


_MODEL: contextvars.ContextVar[tuple[str | None, str]] = contextvars.ContextVar(
    "interp_gan_mark_model", default=(None, "checkpoint file"))


@contextlib.contextmanager
def marking(model_sha256: str | None, sha256_of: str = "checkpoint file"):
    """Within the block, writers that are not handed a hash (the report's inline images and paper
    figures) mark with this one (``reporting.html.write_report`` sets it from ``ctx.meta``)."""
    token = _MODEL.set((model_sha256, sha256_of))
    try:
        yield
    finally:
        _MODEL.reset(token)


def current_model() -> tuple[str | None, str]:
    """(model sha256 or None, what it is the hash of) set by ``marking``."""
    return _MODEL.get()


def _tool() -> tuple[str, str]:
    from interp_gan import __version__
    return "interp_gan", __version__


def xmp_packet(model_sha256: str | None, *, sha256_of: str = "checkpoint file", created: str | None = None) -> str:
    """The XMP packet (UTF-8 text) of one mark."""
    name, version = _tool()
    created = created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    fields = {"tool": name, "tool_version": version, "model_sha256": model_sha256 or "unknown",
              "model_sha256_of": sha256_of}
    ig = "".join(f"<ig:{k}>{escape(str(v))}</ig:{k}>" for k, v in fields.items())
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:ig="{NS}">'
            f"<Iptc4xmpExt:DigitalSourceType>{TRAINED_ALGORITHMIC_MEDIA}</Iptc4xmpExt:DigitalSourceType>"
            f"<xmp:CreatorTool>{escape(f'{name} {version}')}</xmp:CreatorTool>"
            f"<xmp:CreateDate>{escape(created)}</xmp:CreateDate>{ig}"
            '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def parse_xmp(text: str | bytes) -> dict[str, str] | None:
    """The mark's fields from an XMP packet, or None when it carries no DigitalSourceType."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = {}
    for key, tag in (("digital_source_type", "Iptc4xmpExt:DigitalSourceType"), ("creator_tool", "xmp:CreatorTool"),
                     ("created", "xmp:CreateDate"), ("tool", "ig:tool"), ("tool_version", "ig:tool_version"),
                     ("model_sha256", "ig:model_sha256"), ("model_sha256_of", "ig:model_sha256_of")):
        m = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
        if m:
            out[key] = m.group(1).strip()
    return out if "digital_source_type" in out else None


def _pil(img: Any):
    from PIL import Image
    if isinstance(img, Image.Image):
        return img
    import numpy as np
    return Image.fromarray(np.asarray(img))


def save_kw_for(fmt: str, model_sha256: str | None, *, sha256_of: str = "checkpoint file") -> dict:
    """Pillow ``save`` keyword arguments that carry the mark for PNG (``pnginfo``) and WEBP
    (``xmp``); JPEG gets it from ``mark_jpeg_bytes`` after encoding."""
    from PIL.PngImagePlugin import PngInfo

    xmp = xmp_packet(model_sha256, sha256_of=sha256_of)
    fmt = fmt.upper()
    if fmt == "PNG":
        info = PngInfo()
        info.add_itxt(_XMP_KEY, xmp, zip=False)
        return {"pnginfo": info}
    if fmt == "WEBP":
        return {"xmp": xmp.encode("utf-8")}
    return {}


def mark_jpeg_bytes(raw: bytes, model_sha256: str | None, *, sha256_of: str = "checkpoint file") -> bytes:
    """A JPEG with an XMP APP1 segment inserted after SOI (and after a JFIF APP0 when present)."""
    if raw[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream (no SOI marker)")
    payload = _JPEG_XMP_HEADER + xmp_packet(model_sha256, sha256_of=sha256_of).encode("utf-8")
    seg = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    pos = 2
    if raw[2:4] == b"\xff\xe0":
        pos = 4 + int.from_bytes(raw[4:6], "big")
    return raw[:pos] + seg + raw[pos:]


def marked_bytes(img: Any, format: str, model_sha256: str | None, *, sha256_of: str = "checkpoint file",
                 **save_kw) -> bytes:
    """Encode ``img`` (PIL image or uint8 array) as PNG / JPEG / WEBP with the mark."""
    im, fmt = _pil(img), format.upper().replace("JPG", "JPEG")
    if fmt not in ("PNG", "JPEG", "WEBP"):
        raise ValueError(f"cannot mark a {format} image; expected PNG, JPEG or WEBP")
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save_kw, **save_kw_for(fmt, model_sha256, sha256_of=sha256_of))
    raw = buf.getvalue()
    return mark_jpeg_bytes(raw, model_sha256, sha256_of=sha256_of) if fmt == "JPEG" else raw


def save_marked_image(img: Any, path: str | Path, model_sha256: str | None, *, format: str | None = None,
                      sha256_of: str = "checkpoint file", **save_kw) -> Path:
    """Write ``img`` to ``path`` atomically with the mark (format from the suffix unless given)."""
    from interp_gan.util import atomic_write

    path = Path(path)
    fmt = format or {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the image format from the suffix; expected .png, .jpg or .webp")
    blob = marked_bytes(img, fmt, model_sha256, sha256_of=sha256_of, **save_kw)
    from interp_gan.provenance_c2pa import sign_bytes, signing_from_env

    signing = signing_from_env()      # INTERP_GAN_C2PA_KEY / _CERT set: a signed C2PA manifest too
    if signing is not None:           # signs the marked bytes; a failure raises before anything is written
        blob = sign_bytes(blob, f"image/{fmt.lower()}", *signing, model_sha256=model_sha256,
                          sha256_of=sha256_of, title=path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda fh: fh.write(blob))


def read_mark(source: str | Path | bytes) -> dict[str, str] | None:
    """The mark of an image file (or its bytes), read with Pillow; None when it has none."""
    from PIL import Image

    fh = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    with fh, Image.open(fh) as im:
        texts = []
        if im.format == "PNG":
            im.load()
            texts.append(im.info.get(_XMP_KEY))
        texts.append(im.info.get("xmp"))
        for marker, data in getattr(im, "applist", []) or []:
            if marker == "APP1" and data.startswith(_JPEG_XMP_HEADER):
                texts.append(data[len(_JPEG_XMP_HEADER):])
    for t in texts:
        if t:
            mark = parse_xmp(t)
            if mark:
                return mark
    return None


def describe_mark(path: str | Path) -> str:
    """What ``interp-gan inspect image.png`` prints."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image: {path}")
    try:
        mark = read_mark(path)
    except Exception as e:  # noqa: BLE001 - Pillow's many decode errors
        from PIL import UnidentifiedImageError

        why = ("an empty file" if path.stat().st_size == 0 else "not an image format Pillow knows"
               if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}")
        raise ValueError(f"{path} could not be read as an image ({why})") from None
    from interp_gan.provenance_c2pa import describe_c2pa

    c2pa_lines = describe_c2pa(path)
    if mark is None:
        return (f"{path}: no provenance mark (no XMP DigitalSourceType); nothing says it was produced by a "
                f"model, which does not mean it was not" + (f"\n{c2pa_lines}" if c2pa_lines else ""))
    lines = [f"{path}: marked as produced by a trained model",
             f"  digital source type: {mark['digital_source_type']}"]
    for k in ("model_sha256", "model_sha256_of", "creator_tool", "created"):
        if k in mark:
            lines.append(f"  {k.replace('_', ' ')}: {mark[k]}")
    lines.append("  (an unsigned XMP claim, not a C2PA signature)")
    if c2pa_lines:
        lines.append(c2pa_lines)
    return "\n".join(lines)
