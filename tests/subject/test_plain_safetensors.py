"""A ``.safetensors`` file another tool wrote (``save_file(G.state_dict(), ...)``, a model hub's
``model.safetensors``) is a state dict: it loads as the same network's ``.pth`` does, options and
all, instead of being refused as "not an interp_gan checkpoint"."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from interp_gan.subject.loading import convert_checkpoint, load_subject
from tests.models.test_animegan import reference_state_dict
from tests.subject.test_stargan_v2_loading import NETS, _content, _tiny


def _x(size=32):
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _flat(sd: dict) -> dict:
    return {k: v.contiguous() for k, v in sd.items()}


@pytest.mark.parametrize("align", [True, False])
def test_a_plain_safetensors_state_dict_loads_as_its_pth_with_options(align, tmp_path):
    sd = reference_state_dict(widths=(8, 16, 24, 32), num_res=2)
    torch.save(sd, tmp_path / "g.pt")
    save_file(_flat(sd), str(tmp_path / "g.safetensors"))
    opt = "" if align else "#align_corners=false"
    a, b = load_subject(f"{tmp_path / 'g.pt'}{opt}"), load_subject(f"{tmp_path / 'g.safetensors'}{opt}")
    assert b.meta["model"]["name"] == "animegan_v2" and b.meta["model"]["align_corners"] is align
    # how the file was taken is the first model note (old code: nothing said it was read as a state dict)
    assert b.meta["model_notes"][0].startswith("file: a plain .safetensors state dict (no interp_gan metadata)")
    assert b.meta["model_notes"][1:] == a.meta["model_notes"] and not any(".safetensors" in n for n in a.meta["model_notes"])
    ids = torch.zeros(2, dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(a.generate(_x(), ids), b.generate(_x(), ids))
    out = convert_checkpoint(tmp_path / "g.safetensors", tmp_path / "ours.safetensors")   # and it converts
    assert load_subject(out).meta["model"]["name"] == "animegan_v2"


def test_stargan_v2_networks_flattened_into_one_safetensors_file_load(tmp_path):
    M = _tiny()
    torch.save({n: getattr(M, n).state_dict() for n in NETS}, tmp_path / "000010_nets_ema.ckpt")
    save_file(_flat({f"{n}.{k}": v for n in NETS for k, v in getattr(M, n).state_dict().items()}),
              str(tmp_path / "nets_ema.safetensors"))
    a, b = load_subject(tmp_path / "000010_nets_ema.ckpt"), load_subject(tmp_path / "nets_ema.safetensors")
    ids, z = torch.tensor([0, 1]), a.sample_z(2, 0)
    with torch.no_grad():
        assert torch.equal(a.generate(_content(2), ids, z), b.generate(_content(2), ids, z))


def test_an_unknown_plain_safetensors_is_one_line_naming_its_keys(tmp_path):
    save_file({"encoder.weight": torch.zeros(4, 3, 3, 3), "decoder.bias": torch.zeros(3)},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError) as e:
        load_subject(tmp_path / "model.safetensors")
    msg = str(e.value)
    assert "\n" not in msg and "--model file.py:factory" in msg and "not an interp_gan checkpoint" not in msg
