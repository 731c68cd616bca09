"""The PyTorch examples' fast neural style network (``fast_neural_style``'s TransformerNet:
``saved_models/mosaic.pth`` and friends, and the ``*.model`` files its training writes) loads as a
Subject.

Each state_dict is written here key by key in the reference layout (``conv1.conv2d.weight``,
``in1.weight``, ``res1.conv1.conv2d.weight``, ``res1.in1.weight`` .. ``deconv3.conv2d.weight``) with
random values; the expected image comes from an independent functional forward that reads those
keys (reflection pad + ``F.conv2d``, ``F.instance_norm``, nearest x2 upsampling) in the reference's
[0, 255] range, clamped as its ``save_image`` clamps, never from our module. Old code: these files
loaded silently as a generic ResNet generator (Tanh head, content fed in [-1, 1], and a released
file's running statistics used as batch norm).
"""
import json

import pytest
import torch
import torch.nn.functional as F

from interp_gan.subject.loading import load_subject
from tests.models.corrupt_files import REASON, assert_refused_in_one_line, corrupted

REF = (32, 64, 128)


def reference_state_dict(widths=(8, 16, 16), n_res=2, running=False, seed=0):
    """The reference TransformerNet's state_dict with random values (the output spans [0, 255] and
    goes past it, so the clamp bites). ``running``: the InstanceNorm running statistics the released
    files carry."""
    g = torch.Generator().manual_seed(seed)
    w1, w2, w3 = widths
    sd = {}

    def conv(name, cin, cout, k, gain=1.0, shift=0.0):
        sd[f"{name}.conv2d.weight"] = torch.randn(cout, cin, k, k, generator=g) * gain / (k * cin ** 0.5)
        sd[f"{name}.conv2d.bias"] = torch.randn(cout, generator=g) * 0.1 + shift

    def norm(name, c):
        sd[f"{name}.weight"] = torch.rand(c, generator=g) + 0.5
        sd[f"{name}.bias"] = torch.randn(c, generator=g) * 0.3
        if running:
            sd[f"{name}.running_mean"] = torch.randn(c, generator=g) * 5
            sd[f"{name}.running_var"] = torch.rand(c, generator=g) * 50 + 1

    conv("conv1", 3, w1, 9), norm("in1", w1)
    conv("conv2", w1, w2, 3), norm("in2", w2)
    conv("conv3", w2, w3, 3), norm("in3", w3)
    for i in range(1, n_res + 1):
        conv(f"res{i}.conv1", w3, w3, 3), norm(f"res{i}.in1", w3)
        conv(f"res{i}.conv2", w3, w3, 3), norm(f"res{i}.in2", w3)
    conv("deconv1", w3, w2, 3), norm("in4", w2)
    conv("deconv2", w2, w1, 3), norm("in5", w1)
    conv("deconv3", w1, 3, 9, gain=90.0, shift=127.5)
    return sd


def reference_forward_255(sd, x, n_res):
    """The reference forward on [0, 255] images, read off the keys (no clamp)."""
    def layer(h, name, stride=1, up=False):
        if up:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        w = sd[f"{name}.conv2d.weight"]
        p = w.shape[-1] // 2
        return F.conv2d(F.pad(h, (p, p, p, p), mode="reflect"), w, sd[f"{name}.conv2d.bias"], stride=stride)

    def inorm(h, name):   # affine instance norm with the image's own statistics (the script drops running_*)
        return F.instance_norm(h, weight=sd[f"{name}.weight"], bias=sd[f"{name}.bias"], eps=1e-5)

    y = F.relu(inorm(layer(x, "conv1"), "in1"))
    y = F.relu(inorm(layer(y, "conv2", 2), "in2"))
    y = F.relu(inorm(layer(y, "conv3", 2), "in3"))
    for i in range(1, n_res + 1):
        r = F.relu(inorm(layer(y, f"res{i}.conv1"), f"res{i}.in1"))
        y = y + inorm(layer(r, f"res{i}.conv2"), f"res{i}.in2")
    y = F.relu(inorm(layer(y, "deconv1", up=True), "in4"))
    y = F.relu(inorm(layer(y, "deconv2", up=True), "in5"))
    return layer(y, "deconv3")


def expected_image(sd, x, n_res):
    """What the example script saves, in the project's range: content x in [-1, 1] fed as (x + 1) * 127.5,
    the output clamped to [0, 255], mapped back."""
    return reference_forward_255(sd, (x + 1) * 127.5, n_res).clamp(0, 255) / 127.5 - 1


def _save(sd, path, prefix="", wrap=None, legacy=False):
    sd = {f"{prefix}{k}": v for k, v in sd.items()}
    obj = {"state_dict": sd, "epoch": 2} if wrap == "state_dict" else {"model": sd} if wrap == "model" else sd
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def _ids(n):
    return torch.zeros(n, dtype=torch.long)


VARIANTS = {
    "reference_32_64_128_res5": dict(widths=REF, n_res=5),
    "released_with_running_stats": dict(widths=REF, n_res=5, running=True, _file="mosaic.pth"),
    "released_legacy_serialization": dict(widths=(8, 16, 32), n_res=5, running=True, _file="candy.pth",
                                          _legacy=True),
    "trained_model_file": dict(widths=(8, 16, 16), n_res=2, _file="epoch_2_Wed_Dec__2_1e5_1e10.model"),
    "narrow_res3": dict(widths=(4, 8, 12), n_res=3),
    "no_residual_blocks": dict(widths=(8, 8, 8), n_res=0),
    "module_prefix": dict(n_res=2, _prefix="module."),
    "transformer_prefix_wrapped_state_dict": dict(n_res=1, _prefix="transformer.", _wrap="state_dict"),
    "wrapped_model": dict(n_res=2, running=True, _wrap="model"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_loads_and_matches_the_independent_forward(name, tmp_path):
    opts = dict(VARIANTS[name])
    prefix, wrap = opts.pop("_prefix", ""), opts.pop("_wrap", None)
    file, legacy = opts.pop("_file", "style.pth"), opts.pop("_legacy", False)
    sd = reference_state_dict(**opts)
    path = _save(sd, tmp_path / file, prefix, wrap, legacy=legacy)
    s = load_subject(path, device="cpu")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        raw = reference_forward_255(sd, (x + 1) * 127.5, opts["n_res"])
        want = expected_image(sd, x, opts["n_res"])
        got = s.generate(x, _ids(2))
    diff = (got - want).abs().max().item()
    print(f"{name}: max abs diff {diff:.3g}")
    assert got.shape == want.shape == (2, 3, 32, 32) and diff < 1e-5
    assert want.std() > 0.2 and (raw < 0).any() and (raw > 255).any()   # a live image, and the clamp bites
    assert s.meta["model"] == {"name": "fast_neural_style", "widths": list(opts.get("widths", (8, 16, 16))),
                               "n_res": opts["n_res"]}
    assert s.meta["value_range"] == {"input": [0, 255], "output": [0, 255], "output_clamped": True}
    assert any("(x + 1) * 127.5" in n and "clamped to [0, 255]" in n for n in s.meta["model_notes"])
    n_in = 5 + 2 * opts["n_res"]
    dropped = s.meta.get("instance_norm_running_stats_dropped", 0)
    assert dropped == (2 * n_in if opts.get("running") else 0)
    assert any("running_mean / running_var" in n for n in s.meta["model_notes"]) == bool(opts.get("running"))


def test_the_reference_size_has_the_reference_parameter_count(tmp_path):
    s = load_subject(_save(reference_state_dict(REF, 5), tmp_path / "udnie.pth"), device="cpu")
    assert s.meta["model"] == {"name": "fast_neural_style", "widths": [32, 64, 128], "n_res": 5}
    assert sum(p.numel() for p in s.generator.parameters()) == 1_679_235
    assert s.style_names == ["translated"] and s.meta["checkpoint_path"].endswith("udnie.pth")


def test_running_statistics_change_nothing(tmp_path):
    """The released files' running statistics are dropped, not used: the same weights with and without
    them give the same image (a loader that used them, as batch norm, would differ by far)."""
    with_stats = reference_state_dict(n_res=2, running=True)
    without = {k: v for k, v in with_stats.items() if "running_" not in k}
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        a = load_subject(_save(with_stats, tmp_path / "a.pth"), device="cpu").generate(x, _ids(1))
        b = load_subject(_save(without, tmp_path / "b.model"), device="cpu").generate(x, _ids(1))
        as_batch_norm = F.batch_norm(torch.ones(1, 8, 4, 4), with_stats["in1.running_mean"],
                                     with_stats["in1.running_var"], training=False)
    assert torch.equal(a, b)
    assert as_batch_norm.std() > 0.1         # the statistics are far from what instance norm computes


def test_non_finite_running_statistics_are_refused_in_one_line(tmp_path):
    sd = reference_state_dict(n_res=1, running=True)
    sd["res1.in2.running_var"][3] = float("nan")
    with pytest.raises(ValueError, match=r"tensor 'res1\.in2\.running_var' holds 1 NaN/Inf") as e:
        load_subject(_save(sd, tmp_path / "bad.pth"), device="cpu")
    assert "\n" not in str(e.value)


CORRUPT = {   # (running statistics saved, key, its new value (None: deleted), what the line says of it)
    "missing": (False, "res2.in2.bias", None, REASON["missing"]),
    "extra": (False, "res2.conv3.conv2d.weight", torch.zeros(16, 16, 3, 3), REASON["extra"]),
    # a newer PyTorch tracking statistics: the reference refuses it too
    "num_batches_tracked": (True, "in4.num_batches_tracked", torch.tensor(100), REASON["extra"]),
    "wrong_running_stat": (True, "res1.in1.running_mean", torch.zeros(7), REASON["wrong_shape"]),
    "wrong_shape": (False, "deconv1.conv2d.weight", torch.zeros(16, 16, 5, 5), REASON["wrong_shape"]),  # not 3x3
}


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_a_corrupted_file_is_one_line_naming_the_key(kind, tmp_path, capsys):
    running, key, value, says = CORRUPT[kind]
    sd, _ = corrupted(reference_state_dict(n_res=3, running=running), key, value)
    assert_refused_in_one_line(_save(sd, tmp_path / "bad.pth"), key, capsys,
                               says=("fast neural style", "widths 8/16/16, 3 residual blocks", says))


def test_one_corrupted_width_is_the_tensor_named(tmp_path, monkeypatch):
    sd = reference_state_dict(n_res=2)
    sd["conv1.conv2d.weight"] = torch.zeros(4096, 3, 9, 9)      # the other five tensors say 8
    want = r"wrong shape conv1\.conv2d\.weight \[4096, 3, 9, 9\] \(expected \[8, 3, 9, 9\]\)"
    with pytest.raises(ValueError, match=want):
        load_subject(_save(sd, tmp_path / "bad.pth"), device="cpu")
    monkeypatch.setenv("INTERP_GAN_MAX_PARAMS", "1000")            # a consistent file over the cap
    with pytest.raises(ValueError, match=r"G\.pth: the fast neural style generator its tensors imply would have"):
        load_subject(_save(reference_state_dict(n_res=2), tmp_path / "G.pth"), device="cpu")


def test_layers_keep_the_reference_names_and_fire_once_in_order(tmp_path):
    from interp_gan.harvest.hooks import default_unit_layer, modules_that_fire, spatial_layers

    s = load_subject(_save(reference_state_dict(n_res=2), tmp_path / "m.pth"), device="cpu")
    convs = spatial_layers(s.generator)
    assert convs == ["conv1.conv2d", "conv2.conv2d", "conv3.conv2d", "res1.conv1.conv2d", "res1.conv2.conv2d",
                     "res2.conv1.conv2d", "res2.conv2.conv2d", "deconv1.conv2d", "deconv2.conv2d", "deconv3.conv2d"]
    x = torch.zeros(1, 3, 32, 32)
    names = convs + ["in1", "relu1", "relu3", "res1", "res2", "res2.relu", "in4", "relu5"]
    calls = {}
    hooks = [s.generator.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: calls.update({n: calls.get(n, []) + [tuple(o.shape)]})) for n in names]
    with torch.no_grad():
        s.generate(x, _ids(1))
    for h in hooks:
        h.remove()
    assert all(len(v) == 1 for v in calls.values()) and set(calls) == set(names)   # every module fires once
    assert calls["res2"] == [(1, 16, 8, 8)] and calls["deconv1.conv2d"] == [(1, 16, 16, 16)]
    assert modules_that_fire(s.generator, convs, lambda: s.generate(x, _ids(1))) == convs
    assert default_unit_layer(s.generator) == "res2"            # the residual stream the decoder reads
    s0 = load_subject(_save(reference_state_dict((8, 8, 8), 0), tmp_path / "m0.pth"), device="cpu")
    assert default_unit_layer(s0.generator) == "relu3"


def test_ablating_the_default_layer_changes_the_image(tmp_path):
    """A unit of the default layer is removed for real: zeroing a channel of ``resN`` changes the image,
    while zeroing a channel of the conv feeding an instance norm only pins it to the norm's bias."""
    from interp_gan.harvest.hooks import Trace, ablate

    sd = reference_state_dict(n_res=2)
    s = load_subject(_save(sd, tmp_path / "m.pth"), device="cpu")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        base = s.generate(x, _ids(2))
        with Trace(s.generator, "res2", edit=ablate([3])):
            cut = s.generate(x, _ids(2))
        with Trace(s.generator, "res2.in2", retain_output=True) as t:
            with Trace(s.generator, "res2.conv2.conv2d", edit=ablate([3])):
                s.generate(x, _ids(2))
    assert (cut - base).abs().max() > 1e-3
    assert torch.allclose(t.output[:, 3], sd["res2.in2.bias"][3].expand(2, 8, 8))


def test_an_image_size_the_network_cannot_take_is_one_line(tmp_path):
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import _fit_image_size

    s = load_subject(_save(reference_state_dict(n_res=1), tmp_path / "m.pth"), device="cpu")
    with pytest.raises(ValueError, match=r"multiples of 4.*got 30x30") as e:
        s.generate(torch.zeros(1, 3, 30, 30), _ids(1))
    assert "\n" not in str(e.value)
    assert _fit_image_size(s, PipelineConfig(name="t", image_size=30)).image_size == 32


def test_converted_file_round_trips_with_its_notes(tmp_path, capsys):
    from interp_gan.cli import main

    sd = reference_state_dict(n_res=2, running=True)
    src = _save(sd, tmp_path / "rain_princess.pth", "module.")
    out = tmp_path / "rain_princess.safetensors"
    assert main(["convert", str(src), str(out), "--style-names", "rain_princess"]) == 0
    a = load_subject(src, device="cpu")
    b = load_subject(out, device="cpu")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(a.generate(x, _ids(2)), b.generate(x, _ids(2)))
    assert b.meta["model"] == a.meta["model"] and b.style_names == ["rain_princess"]
    assert b.meta["model_notes"] == a.meta["model_notes"] and b.meta["instance_norm_running_stats_dropped"] == 18
    assert main(["convert", str(src), str(tmp_path / "x.safetensors"), "--style-names", "a,b"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fast neural style network (one style)" in err


def test_the_random_init_control_redraws_the_norms_too(tmp_path):
    s = load_subject(_save(reference_state_dict(n_res=1), tmp_path / "m.pth"), device="cpu")
    trained = {k: v.clone() for k, v in s.generator.state_dict().items()}
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        before = s.generate(x, _ids(1))
        with s.random_init(seed=0) as c:
            assert c.random_init_report.kept == {}
            assert all(not torch.equal(v, trained[k]) for k, v in s.generator.state_dict().items())
            assert not torch.equal(s.generate(x, _ids(1)), before)
        assert torch.equal(s.generate(x, _ids(1)), before)


def test_dissection_runs_on_every_conv_with_its_control(tmp_path):
    import interp_gan as ig
    from tests.conftest import make_tiny_data

    s = load_subject(_save(reference_state_dict((4, 8, 8), n_res=1, running=True), tmp_path / "m.pth"), device="cpu")
    f = ig.build_analysis("dissection", n_boot=20, n_perm=20).run(s, make_tiny_data(s, n=16, size=32))
    assert not f.skipped
    assert list(f.tables["dissection_units"].layer.unique()) == [
        "conv1.conv2d", "conv2.conv2d", "conv3.conv2d", "res1.conv1.conv2d", "res1.conv2.conv2d",
        "deconv1.conv2d", "deconv2.conv2d", "deconv3.conv2d"]
    assert len(f.tables["dissection_control"]) > 0          # the random-init control ran


@pytest.mark.slow   # ~15 s: a whole analyze run with its report
def test_analyze_runs_dissection_end_to_end(tmp_path, capsys):
    from interp_gan.cli import main

    p = _save(reference_state_dict((4, 8, 8), n_res=1, running=True), tmp_path / "mosaic.pth")
    sets = ["n_images=16", "image_size=32", "batch_size=8", "analyses.dissection.n_boot=20",
            "analyses.dissection.n_perm=20"]
    rc = main(["analyze", str(p), "--pipeline", "analyses/dissection.toml", "--device", "cpu",
               "--out", str(tmp_path / "rep"), *[x for s in sets for x in ("--set", s)]])
    assert rc == 0, capsys.readouterr().err[-2000:]
    found = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert not found["dissection"].get("skipped"), found["dissection"].get("skipped")
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "(x + 1) * 127.5" in html and "running_mean / running_var" in html     # the model notes, at the top


@pytest.mark.slow   # ~10 s: every analysis of analyses/full.toml (but replication) on a fast neural style network nobody configured
def test_full_pipeline_runs_or_skips_every_analysis(tmp_path):
    from interp_gan.config import load_pipeline
    from tests.test_unconfigured_pipeline import analyze_family

    p = _save(reference_state_dict((4, 8, 8), n_res=2, running=True), tmp_path / "mosaic.pth")
    found = analyze_family(p, tmp_path / "rep")
    assert any("'res2', chosen by default" in n for n in found["directions"]["notes"])
    assert any("used 'res2'" in n for n in found["embedding"]["notes"])


def test_the_training_scripts_file_names_are_found_and_named(tmp_path):
    """Its training names a file ``epoch_2_Wed_Dec__2_10:24:39_2026_100000.0_10000000000.0.model``:
    the colons do not make it a module:factory spec, and its folder names the files in it."""
    name = "epoch_2_Wed_Dec__2_10:24:39_2026_100000.0_10000000000.0.model"
    p = _save(reference_state_dict(n_res=1), tmp_path / name)
    assert load_subject(p, device="cpu").meta["model"]["name"] == "fast_neural_style"
    with pytest.raises(FileNotFoundError, match=r"no such file: .*ckpt_2\.model \(a checkpoint path, not a module"):
        load_subject(str(tmp_path / "epoch_2_Wed_Dec__2_10:24:39_ckpt_2.model"), device="cpu")
    with pytest.raises(ValueError, match=r"is a folder; name the model file in it: " + name.replace(".", r"\.")):
        load_subject(tmp_path, device="cpu")


def test_inspect_lists_the_network_and_its_range(tmp_path, capsys):
    from interp_gan.cli import main

    p = _save(reference_state_dict(n_res=1, running=True), tmp_path / "mosaic.pth")
    assert main(["inspect", str(p), "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert '"fast_neural_style"' in out and "res1.conv2.conv2d" in out and "(1, 3, 32, 32)" in out
    assert "(x + 1) * 127.5" in out and '"instance_norm_running_stats_dropped": 14' in out
