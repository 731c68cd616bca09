"""Subjects from a CycleGAN reference-layout .pth and from a user factory; clear errors otherwise."""
import pytest
import torch

from interp_gan.subject.loading import load_subject
from interp_gan.models import CycleGANGenerator


def test_cyclegan_pth_loads_as_a_subject(tmp_path):
    torch.manual_seed(0)
    G = CycleGANGenerator(ngf=4, n_blocks=2).eval()
    p = tmp_path / "latest_net_G_A.pth"
    torch.save({f"module.{k}": v for k, v in G.state_dict().items()}, p)  # DataParallel prefix too
    s = load_subject(p, device="cpu")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert not s.has_latent and s.num_styles == 1
    assert torch.equal(s.generate(x, torch.zeros(2, dtype=torch.long)), G(x))


def test_pickled_module_is_refused(tmp_path):
    p = tmp_path / "model.pth"
    torch.save(CycleGANGenerator(ngf=4, n_blocks=1), p)  # a whole pickled module, not a state_dict
    with pytest.raises(ValueError, match="pickled nn.Module of class interp_gan.models.cyclegan.CycleGANGenerator"):
        load_subject(p, device="cpu")


def test_factory_file(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text("import torch\ndef make():\n    return torch.nn.Conv2d(3, 3, 1)\n")
    s = load_subject(f"{f}:make", device="cpu")
    assert s.generate(torch.zeros(1, 3, 8, 8), torch.zeros(1, dtype=torch.long)).shape == (1, 3, 8, 8)
    with pytest.raises(LookupError, match="no attribute 'nope'"):
        load_subject(f"{f}:nope", device="cpu")


def test_missing_checkpoint_says_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="safetensors"):
        load_subject(tmp_path / "none.safetensors", device="cpu")


def test_convert_cyclegan_to_safetensors_and_load_it(tmp_path, capsys):
    from interp_gan.cli import main

    torch.manual_seed(0)
    G = CycleGANGenerator(ngf=4, n_blocks=2).eval()
    src = tmp_path / "latest_net_G_A.pth"
    torch.save(G.state_dict(), src)
    out = tmp_path / "g.safetensors"
    assert main(["convert", str(src), str(out)]) == 0
    s = load_subject(out, device="cpu")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(s.generate(x, torch.zeros(2, dtype=torch.long)), G(x))
    assert s.meta["model"] == {"name": "cyclegan", "ngf": 4, "n_blocks": 2, "dropout": False}
    assert main(["convert", str(src), str(out)]) == 2            # never overwrites
    assert "exists" in capsys.readouterr().err
    assert main(["inspect", str(out), "--size", "32"]) == 0
    assert "model.1" in capsys.readouterr().out
