"""The style feature net f: VGG-19 from a local weights file (nothing downloaded), build_feature_net,
and the VGG option end to end (training -> checkpoint -> reload; a gone file; the pipeline's override)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from interp_gan.config import ModelConfig, PipelineConfig, Recipe, TrainConfig
from interp_gan.models import (FeatureNetUnavailable, RandomFeatureNet, StyleNet, VGGFeatureNet, build_feature_net,
                               build_model)
from interp_gan.models.features import VGG19_LAYERS
from interp_gan.pipeline import analyze
from interp_gan.checkpoint import load_checkpoint, save_checkpoint

_IDX = (1, 6, 11, 20)   # relu1_1, relu2_1, relu3_1, relu4_1 in torchvision's vgg19().features


def _training_fixtures():
    """tests/training/conftest.py's tiny data and recipe, loaded under its own module name."""
    spec = importlib.util.spec_from_file_location("_training_fixtures", Path(__file__).parents[1] / "training" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    """(path, torchvision vgg19.features holding the same random weights): features[:21] saved with
    ``features.`` keys plus a fake ``classifier.0.weight`` that must be ignored."""
    torch.manual_seed(0)
    ref = torchvision.models.vgg19(weights=None).features.eval()
    sd = {f"features.{k}": v.clone() for k, v in ref[:21].state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(2, 3)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(sd, path)
    return path, ref


def _imagenet(x):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return ((x + 1) / 2 - mean) / std


def test_layer_names_match_torchvision_layout():
    feats = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    assert {k: VGG19_LAYERS[k] for k in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")} == \
        {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu5_1": 29}
    assert all(isinstance(feats[i], torch.nn.ReLU) and isinstance(feats[i - 1], torch.nn.Conv2d)
               for i in VGG19_LAYERS.values())


def test_vgg_maps_equal_a_direct_torchvision_forward(vgg):
    path, ref = vgg
    f = VGGFeatureNet(path)
    assert len(f.features) == 21 and not any(p.requires_grad for p in f.parameters())
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
    want, h = [], _imagenet(x)
    with torch.no_grad():
        for i, layer in enumerate(ref[:21]):
            h = layer(h)
            if i in _IDX:
                want.append(h.clone())
        got = f(x)
    assert [g.shape[1] for g in got] == [64, 128, 256, 512]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=0)
    assert [tuple(g.shape) for g in f.grams(x)] == [(2, c, c) for c in (64, 128, 256, 512)]
    spec = f.spec()
    assert spec["name"] == "vgg19" and spec["path"] == str(path.resolve())
    assert spec["layers"] == ["relu1_1", "relu2_1", "relu3_1", "relu4_1"] and len(spec["sha256"]) == 64
    two = build_model("vgg19_features", weights_path=path, layers=("relu1_1", "relu2_1"))
    assert len(two.features) == 7
    torch.testing.assert_close(two(x)[1], got[1], rtol=0, atol=0)


def test_module_prefix_and_strict_key_check(vgg, tmp_path):
    path, _ = vgg
    sd = torch.load(path, weights_only=True)
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "ddp.pth")
    assert VGGFeatureNet(tmp_path / "ddp.pth").spec()["layers"][-1] == "relu4_1"
    from safetensors.torch import save_file
    save_file(sd, str(tmp_path / "vgg19.safetensors"))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(VGGFeatureNet(tmp_path / "vgg19.safetensors")(x)[-1], VGGFeatureNet(path)(x)[-1],
                               rtol=0, atol=0)
    dropped = {k: v for k, v in sd.items() if k != "features.19.bias"}
    torch.save(dropped, tmp_path / "dropped.pth")
    with pytest.raises(ValueError, match=r"lacks key 'features\.19\.bias'.*") as e:
        VGGFeatureNet(tmp_path / "dropped.pth")
    assert "dropped.pth" in str(e.value) and "\n" not in str(e.value)
    VGGFeatureNet(tmp_path / "dropped.pth", layers=("relu1_1", "relu3_1"))   # not needed up to relu3_1
    bad = dict(sd, **{"features.5.weight": torch.zeros(128, 64, 1, 1)})
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"bad\.pth: key 'features\.5\.weight' has shape \(128, 64, 1, 1\)"):
        VGGFeatureNet(tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError, match="no VGG-19 weights file.*nothing is downloaded"):
        VGGFeatureNet(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="relu9_1"):
        VGGFeatureNet(path, layers=("relu9_1",))


def test_build_feature_net_from_strings_and_specs(vgg, tmp_path):
    path, _ = vgg
    r = build_feature_net("random", seed=7)
    assert isinstance(r, RandomFeatureNet) and r.spec()["seed"] == 7
    assert build_feature_net(r.spec()).spec() == r.spec()
    f = build_feature_net(f"vgg19:{path}")
    assert isinstance(f, VGGFeatureNet)
    again = build_feature_net(json.loads(json.dumps(f.spec())))
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    for a, b in zip(f.grams(x), again.grams(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for bad in ("vgg", "vgg19:", "Random"):
        with pytest.raises(ValueError, match="expected \"random\" or \"vgg19:"):
            build_feature_net(bad)
    changed = dict(f.spec(), sha256="0" * 64)
    with pytest.raises(FeatureNetUnavailable, match="has changed"):
        build_feature_net(changed)
    with pytest.raises(FeatureNetUnavailable, match="is gone"):
        build_feature_net(dict(f.spec(), path=str(tmp_path / "gone.pth")))


def test_config_validates_feature_net():
    assert TrainConfig().feature_net == "random" and PipelineConfig().feature_net == ""
    assert TrainConfig.from_dict({"feature_net": "vgg19:/x/vgg19.pth"}).feature_net == "vgg19:/x/vgg19.pth"
    with pytest.raises(ValueError, match="TrainConfig.feature_net"):
        TrainConfig(feature_net="vgg16:/x.pth")
    with pytest.raises(ValueError, match="PipelineConfig.feature_net"):
        PipelineConfig(feature_net="random ")


@pytest.mark.slow
def test_training_with_vgg_checkpoint_reloads_it_and_survives_a_gone_file(vgg, tmp_path, monkeypatch):
    from interp_gan.training.loop import train

    monkeypatch.setenv("INTERP_GAN_CACHE", str(tmp_path / "cache"))
    fx = _training_fixtures()
    src, _ = vgg
    weights = tmp_path / "vgg19.pth"
    weights.write_bytes(src.read_bytes())
    recipe = fx.tiny_recipe(steps=2, feature_net=f"vgg19:{weights}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ckpt = train(recipe, tmp_path / "run", data=fx.make_tiny_data(), progress=False)
    finally:
        torch.set_num_threads(threads)
    ck = load_checkpoint(ckpt)
    assert ck.meta["feature_net"]["name"] == "vgg19" and "feature_net_missing" not in ck.meta
    assert isinstance(ck.feature_net, VGGFeatureNet)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    for a, b in zip(ck.feature_net.grams(x), VGGFeatureNet(weights).grams(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    weights.unlink()
    ck = load_checkpoint(ckpt)
    assert ck.feature_net is None and ck.generator is not None and ck.classifiers
    reason = ck.meta["feature_net_missing"]
    assert "is gone" in reason and str(weights) in reason and "\n" not in reason
    _images(tmp_path / "content", 32, 0)     # the analyses that want f note its absence, nothing fails
    cfg = PipelineConfig.from_dict({"name": "t", "n_images": 32, "image_size": 16, "batch_size": 16, "device": "cpu",
                                    "analyses": {"ablation": {"ks": [1], "n_random": 1, "n_boot": 20},
                                                 "overview": {"n_images": 2}}})
    report, failed = analyze(ckpt, cfg, out_dir=tmp_path / "rep", data=str(tmp_path / "content"))
    assert failed == []
    findings = json.loads((report / "findings.json").read_text())
    assert reason in json.dumps(findings)


def _images(folder, n, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_pipeline_feature_net_reaches_the_subject(vgg, tmp_path):
    path, _ = vgg
    torch.manual_seed(0)
    G = StyleNet(2, ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoint.safetensors", generator=G, style_names=["a", "b"],
                           recipe=Recipe(model=ModelConfig(ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)),
                           step=1, fingerprint="0" * 64)           # no feature net of its own
    _images(tmp_path / "data" / "content", 8, 0)
    _images(tmp_path / "data" / "style" / "a", 2, 1)
    _images(tmp_path / "data" / "style" / "b", 2, 2)
    cfg = PipelineConfig.from_dict({"name": "t", "n_images": 4, "image_size": 16, "batch_size": 4, "device": "cpu",
                                    "feature_net": f"vgg19:{path}", "analyses": {"overview": {"n_images": 2}}})
    report, failed = analyze(ckpt, cfg, out_dir=tmp_path / "rep", data=str(tmp_path / "data"))
    assert failed == []
    prov = json.loads((report / "findings.json").read_text())
    text = json.dumps(prov)
    assert '"name": "vgg19"' in text and VGGFeatureNet(path).spec()["sha256"] in text and '"source": "pipeline"' in text
