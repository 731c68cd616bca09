import hashlib
import pickle

import pytest
import torch

from interp_gan.config import Recipe
from interp_gan.models import RandomFeatureNet, StyleClassifier, StyleDiscriminator, StyleNet
from interp_gan.checkpoint import (atomic_write, load_checkpoint, load_trainer_state, read_metadata,
                                            save_checkpoint, save_trainer_state)
from conftest import tiny_recipe


def _save(path, recipe: Recipe, seed=0):
    torch.manual_seed(seed)
    m = recipe.model
    G = StyleNet(3, ch=m.ch, n_down=m.n_down, n_blocks=m.n_blocks, style_dim=m.style_dim, latent_dim=m.latent_dim)
    D = StyleDiscriminator(3, ch=m.d_ch, n_layers=m.d_layers)
    clfs = {"rgb": StyleClassifier(3, "rgb", ch=4), "texture": StyleClassifier(3, "texture", ch=4)}
    for c in clfs.values():   # non-trivial BatchNorm running stats must survive too
        c.train()(torch.randn(4, 3, 16, 16))
        c.eval()
    save_checkpoint(path, generator=G, discriminator=D, classifiers=clfs, classifier_accuracy={"rgb": 0.9},
                    feature_net=RandomFeatureNet(seed=7, channels=(4, 8)), recipe=recipe,
                    style_names=["a", "b", "c"], step=12, fingerprint="fp123")
    return G, D, clfs


def test_round_trip_gives_identical_outputs_and_metadata(tmp_path):
    recipe = tiny_recipe()
    path = tmp_path / "checkpoint.safetensors"
    G, D, clfs = _save(path, recipe)
    ck = load_checkpoint(path)
    x, ids, z = torch.rand(2, 3, 16, 16) * 2 - 1, torch.tensor([0, 2]), torch.randn(2, recipe.model.latent_dim)
    assert not ck.generator.training
    torch.testing.assert_close(ck.generator.generate(x, ids, z), G.eval().generate(x, ids, z), rtol=0, atol=0)
    torch.testing.assert_close(ck.discriminator(x)[0], D(x)[0], rtol=0, atol=0)
    for k in ("rgb", "texture"):
        torch.testing.assert_close(ck.classifiers[k](x), clfs[k](x), rtol=0, atol=0)
    assert ck.feature_net.spec() == {"name": "random_features", "seed": 7, "channels": [4, 8]}
    meta = read_metadata(path)
    assert meta == ck.meta
    assert meta["step"] == 12 and meta["style_names"] == ["a", "b", "c"] and meta["data_fingerprint"] == "fp123"
    assert Recipe.from_dict(meta["training"]) == recipe and meta["format_version"] == 1
    assert meta["classifiers"]["rgb"]["accuracy"] == 0.9
    assert ck.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_loading_never_unpickles(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.safetensors"
    _save(path, tiny_recipe())

    def boom(*a, **k):
        raise AssertionError("checkpoint loading must not unpickle")
    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)
    monkeypatch.setattr(torch, "load", boom)
    assert load_checkpoint(path).meta["step"] == 12


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))   # would create the marker file if ever unpickled


def test_malicious_pickle_renamed_is_refused_with_clear_error(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.safetensors"
    torch.save({"x": _Payload(str(marker))}, bad)
    with pytest.raises(ValueError, match=r"evil.safetensors is not an interp_gan checkpoint: not a safetensors"):
        load_checkpoint(bad)
    assert not marker.exists()
    # a valid safetensors file without our metadata is refused too, in one line
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="is not an interp_gan checkpoint: its safetensors header has no"):
        read_metadata(tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_trainer_state_loads_with_weights_only(tmp_path):
    p = tmp_path / "trainer_state.pt"
    G = StyleNet(2, ch=4, n_down=1, n_blocks=1, style_dim=4, latent_dim=2)
    opt = torch.optim.Adam(G.parameters())
    G(torch.zeros(1, 3, 8, 8), torch.zeros(1, 4)).sum().backward()
    opt.step()
    save_trainer_state(p, {"G": G.state_dict(), "opt": opt.state_dict(), "step": 3,
                           "rng": {"torch": torch.get_rng_state(), "pos": 5, "gauss": 0.5}})
    st = torch.load(p, weights_only=True)
    assert st["step"] == 3 and torch.equal(st["rng"]["torch"], torch.get_rng_state())
    assert load_trainer_state(p)["opt"]["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    # a pickle with arbitrary objects is refused by weights_only loading, with our message
    torch.save({"x": _Payload(str(tmp_path / "pwned"))}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a loadable interp_gan trainer state"):
        load_trainer_state(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_failed_write_keeps_the_old_checkpoint_and_cleans_up(tmp_path):
    path = tmp_path / "checkpoint.safetensors"
    _save(path, tiny_recipe())
    before = path.read_bytes()

    def half_then_crash(fh):
        fh.write(before[: len(before) // 2])
        raise KeyboardInterrupt("killed mid-write")
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_crash)
    assert path.read_bytes() == before
    assert load_checkpoint(path).meta["step"] == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors"]   # no temp file left
    # and a save that raises inside serialisation also leaves the old file in place
    with pytest.raises(ValueError):
        save_checkpoint(path, generator=StyleNet(2, ch=4, n_down=1, n_blocks=1, style_dim=4, latent_dim=2),
                        recipe=tiny_recipe(), style_names=["only one"], step=1, fingerprint="x")
    assert path.read_bytes() == before
