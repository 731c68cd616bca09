"""Optional signed C2PA manifests on the images interp_gan writes (``pip install interp-gan[c2pa]``).

    sign_image("step_000500.png", "signer.key.pem", "signer.chain.pem", model_sha256=sha)
    read_c2pa("step_000500.png")   # {'validation_state': 'Valid', 'digital_source_type': ..., ...} | None

    export INTERP_GAN_C2PA_KEY=signer.key.pem INTERP_GAN_C2PA_CERT=signer.chain.pem
    # from now on save_marked_image signs every PNG / JPEG / WebP it writes, after the XMP mark

The manifest (C2PA 2.x, written by c2pa-python / c2pa-rs) holds a ``c2pa.actions`` assertion with
one ``c2pa.created`` action whose ``digitalSourceType`` is the IPTC ``trainedAlgorithmicMedia`` URI
and whose ``softwareAgent`` is interp_gan and its version, an ``org.interp_gan.model`` assertion
with the model's sha256 (and what it is the hash of), the hard binding to the file's bytes
(``c2pa.hash.data``) and the claim signature made with the user's key and certificate chain.

No network, ever: signing passes no timestamp-authority URL (so the signature carries no trusted
time; it is valid while the certificate is), and reading turns off OCSP and remote-manifest
fetching. Trust is the reader's business: with a certificate chain of the user's own CA the
signature and the hashes validate (``validation_state`` ``Valid``) but the signer is reported
untrusted (``signingCredential.untrusted``) unless that CA is handed to ``read_c2pa`` as a trust
anchor (``trust_anchors=`` or ``INTERP_GAN_C2PA_TRUST_ANCHORS``), which makes it ``Trusted``.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from interp_gan.provenance_mark import TRAINED_ALGORITHMIC_MEDIA

__all__ = ["C2paSigningError", "c2pa_available", "sign_image", "sign_bytes", "read_c2pa", "describe_c2pa", "manifest_definition", "signing_from_env",
           "ENV_KEY", "ENV_CERT", "ENV_TRUST", "MODEL_ASSERTION"]

ENV_KEY, ENV_CERT, ENV_TRUST = "INTERP_GAN_C2PA_KEY", "INTERP_GAN_C2PA_CERT", "INTERP_GAN_C2PA_TRUST_ANCHORS"
MODEL_ASSERTION = "org.interp_gan.model"
INSTALL_HINT = "C2PA signing needs `pip install interp-gan[c2pa]` (the c2pa-python package)"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
_ALGS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
# Reading never goes to the network: no OCSP, no manifest fetched from a remote URL.
_OFFLINE = {"verify": {"ocsp_fetch": False, "remote_manifest_fetch": False}}


class C2paSigningError(RuntimeError):
    """A C2PA signing or reading problem, said in one line."""


def _one_line(e: BaseException | str) -> str:
    return " ".join(str(e).split())


def c2pa_available() -> bool:
    """Whether the optional ``c2pa-python`` package can be imported."""
    try:
        import c2pa  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or its native library failing to load
        return False
    return True


def _c2pa():
    try:
        import c2pa
    except Exception as e:  # noqa: BLE001
        raise C2paSigningError(f"{INSTALL_HINT}; importing it failed: {_one_line(e)}") from None
    return c2pa


def _mime(path: Path) -> str:
    mime = _MIME.get(path.suffix.lower())
    if mime is None:
        raise C2paSigningError(f"{path}: C2PA signing here handles .png, .jpg and .webp, not {path.suffix!r}")
    return mime


def _read_pem(path: str | Path, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise C2paSigningError(f"C2PA {what} {path} could not be read: {_one_line(e.strerror or e)}") from None
    if b"-----BEGIN" not in data:
        raise C2paSigningError(f"C2PA {what} {path} could not be read: not a PEM file (no '-----BEGIN' line)")
    return data


def _context(c2pa, trust_anchors: bytes | None = None):
    settings = json.loads(json.dumps(_OFFLINE))
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors.decode("ascii", "replace")}
    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def manifest_definition(title: str, model_sha256: str | None, sha256_of: str = "checkpoint file") -> dict:
    """The manifest definition handed to ``c2pa.Builder``."""
    from interp_gan.provenance_mark import _tool

    name, version = _tool()
    return {
        "claim_generator_info": [{"name": name, "version": version}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions",
             "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                                   "softwareAgent": {"name": name, "version": version}}]}},
            {"label": MODEL_ASSERTION,
             "data": {"model_sha256": model_sha256 or "unknown", "model_sha256_of": sha256_of}},
        ],
    }


def sign_image(path: str | Path, key_pem_path: str | Path, cert_chain_pem_path: str | Path, *, alg: str = "es256",
               model_sha256: str | None = None, sha256_of: str = "checkpoint file") -> Path:
    """Embed a signed C2PA manifest in the PNG / JPEG / WebP at ``path`` (rewritten atomically).

    ``cert_chain_pem_path``: the signing certificate first, then its intermediates (PEM). C2PA wants
    an end-entity certificate issued by a CA (not self-signed) with the digitalSignature key usage
    and an extended key usage such as emailProtection or documentSigning. No timestamp authority
    is used: nothing goes over the network."""
    from interp_gan.util import atomic_write

    path = Path(path)
    blob = sign_bytes(path.read_bytes(), _mime(path), key_pem_path, cert_chain_pem_path, alg=alg,
                      model_sha256=model_sha256, sha256_of=sha256_of, title=path.name)
    return atomic_write(path, lambda fh: fh.write(blob))


def sign_bytes(data: bytes, mime: str, key_pem_path: str | Path, cert_chain_pem_path: str | Path, *,
               alg: str = "es256", model_sha256: str | None = None, sha256_of: str = "checkpoint file",
               title: str = "image") -> bytes:
    """``data`` (an encoded image of type ``mime``) with a signed C2PA manifest embedded."""
    c2pa = _c2pa()
    alg = alg.lower()
    if alg not in _ALGS:
        raise C2paSigningError(f"C2PA signing algorithm {alg!r} unknown; expected one of {', '.join(_ALGS)}")
    key = _read_pem(key_pem_path, "key")
    chain = _read_pem(cert_chain_pem_path, "certificate chain")
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain, key, None))   # None: no TSA URL
    except c2pa.C2paError as e:
        raise C2paSigningError(f"C2PA key {key_pem_path} / certificate {cert_chain_pem_path} could not be "
                               f"used ({alg}): {_one_line(e)}") from None
    out = io.BytesIO()
    try:
        with signer, _context(c2pa) as ctx, \
                c2pa.Builder.from_json(manifest_definition(title, model_sha256, sha256_of), context=ctx) as builder:
            builder.sign(signer, mime, io.BytesIO(data), out)
    except c2pa.C2paError as e:
        raise C2paSigningError(f"C2PA signing of {title} failed: {_one_line(e)}") from None
    return out.getvalue()


def signing_from_env() -> tuple[str, str] | None:
    """(key path, certificate chain path) from ``INTERP_GAN_C2PA_KEY`` / ``INTERP_GAN_C2PA_CERT``;
    None when neither is set; an error when only one is."""
    key, cert = os.environ.get(ENV_KEY, "").strip(), os.environ.get(ENV_CERT, "").strip()
    if not key and not cert:
        return None
    if not (key and cert):
        missing = ENV_CERT if key else ENV_KEY
        raise C2paSigningError(f"C2PA signing needs both {ENV_KEY} and {ENV_CERT}; {missing} is not set")
    return key, cert


def read_c2pa(path: str | Path, *, trust_anchors: str | Path | None = None) -> dict[str, Any] | None:
    """The C2PA manifest of an image, summarised; None when it has none. Needs c2pa-python
    (``C2paSigningError`` with the install hint otherwise).

    Keys: validation_state ('Invalid' | 'Valid' | 'Trusted'), failures (validation codes),
    digital_source_type, software_agent, model_sha256, model_sha256_of, signer, alg, claim_generator.
    ``trust_anchors`` (PEM path; default ``INTERP_GAN_C2PA_TRUST_ANCHORS``) makes a chain to it
    'Trusted'. Reading does no network (no OCSP, no remote manifests)."""
    path = Path(path)
    mime = _mime(path)
    c2pa = _c2pa()
    trust_anchors = trust_anchors or os.environ.get(ENV_TRUST, "").strip() or None
    anchors = _read_pem(trust_anchors, "trust anchors") if trust_anchors else None
    try:
        with _context(c2pa, anchors) as ctx, open(path, "rb") as fh:
            try:
                reader = c2pa.Reader(mime, fh, context=ctx)
            except c2pa.C2paError.ManifestNotFound:
                return None
            with reader:
                state = reader.get_validation_state()
                results = reader.get_validation_results() or {}
                manifest = reader.get_active_manifest() or {}
    except c2pa.C2paError as e:
        raise C2paSigningError(f"C2PA manifest of {path} could not be read: {_one_line(e)}") from None
    active = results.get("activeManifest") or {}
    out: dict[str, Any] = {"validation_state": state,
                           "failures": [f.get("code") for f in active.get("failure", [])],
                           "signer": None, "alg": None, "claim_generator": None}
    info = manifest.get("signature_info") or {}
    if info:
        out["signer"] = ", ".join(x for x in (info.get("common_name"), info.get("issuer")) if x)
        out["alg"] = info.get("alg")
    gen = (manifest.get("claim_generator_info") or [{}])[0]
    if gen:
        out["claim_generator"] = " ".join(str(gen[k]) for k in ("name", "version") if gen.get(k))
    for a in manifest.get("assertions", []):
        if a.get("label", "").startswith("c2pa.actions"):
            for act in a.get("data", {}).get("actions", []):
                if act.get("action") == "c2pa.created":
                    out["digital_source_type"] = act.get("digitalSourceType")
                    agent = act.get("softwareAgent")
                    out["software_agent"] = (" ".join(str(agent[k]) for k in ("name", "version") if agent.get(k))
                                             if isinstance(agent, dict) else agent)
        elif a.get("label") == MODEL_ASSERTION:
            out["model_sha256"] = a.get("data", {}).get("model_sha256")
            out["model_sha256_of"] = a.get("data", {}).get("model_sha256_of")
    return out


def describe_c2pa(path: str | Path) -> str | None:
    """The lines ``interp-gan inspect image.png`` adds about a C2PA manifest (None: no manifest,
    or c2pa not installed; a one-line note when the manifest cannot be read)."""
    if not c2pa_available():
        return None
    try:
        m = read_c2pa(path)
    except C2paSigningError as e:
        return f"  C2PA: {e}"
    if m is None:
        return None
    lines = [f"  C2PA manifest: validation state {m['validation_state']}"
             + (f" (failures: {', '.join(m['failures'])})" if m["failures"] else "")]
    for k in ("digital_source_type", "software_agent", "model_sha256", "model_sha256_of", "signer", "alg"):
        if m.get(k):
            lines.append(f"    {k.replace('_', ' ')}: {m[k]}")
    if "signingCredential.untrusted" in m["failures"]:
        lines.append("    (the signer's certificate does not chain to a trust anchor this reader knows; "
                     f"set {ENV_TRUST} to your CA's PEM to check it)")
    return "\n".join(lines)
