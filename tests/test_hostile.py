"""Issue #16: nothing lost, nothing mixed, nothing silently wrong. Each test builds a real hostile
input (a second checkpoint, NaN weights, a truncated file, a lying metadata header, ...) and checks
the one-line refusal or the recorded failure."""
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from interp_gan.analyses.base import Analysis, build_analysis, register_analysis
from interp_gan.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from interp_gan.cli import main
from interp_gan.config import ModelConfig, PipelineConfig, Recipe
from interp_gan.findings import Finding
from interp_gan.models import StyleNet
from interp_gan.pipeline import analyze, run_analyses

TINY = dict(ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)


def _ckpt(path, seed=0, names=("a", "b"), mutate=None):
    torch.manual_seed(seed)
    G = StyleNet(len(names), **TINY)
    if mutate:
        mutate(G)
    return save_checkpoint(path, generator=G, style_names=list(names), recipe=Recipe(model=ModelConfig(**TINY)),
                           step=1, fingerprint="0" * 64)


def _images(folder, n, seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _cfg(**analyses):
    return PipelineConfig.from_dict({"name": "t", "n_images": 4, "image_size": 32, "batch_size": 4,
                                     "device": "cpu", "classifiers": "none", "analyses": analyses})


def _rewrite_meta(path, **changes):
    """The checkpoint at ``path`` with its metadata keys changed (None deletes one)."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["interp_gan"])
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    save_file(load_file(str(path)), str(path), metadata={"interp_gan": json.dumps(meta)})
    return path


class _Probe(Analysis):
    """Generates once; raises what ``error`` names (a test-only analysis)."""

    def __init__(self, *, error: str = ""):
        self.error = error

    def run(self, subject, data):
        out = subject.generate(data.content, data.style_ids, data.z)
        if self.error == "zero":
            return 1 / 0
        if self.error == "os":
            raise OSError("disk full")
        return Finding(analysis="hostile_probe", params={}, notes=[f"mean {float(out.mean()):.3f}"])


@pytest.fixture(autouse=True)
def probe():
    """``hostile_probe`` registered for one test only (the contract test must not see it)."""
    from interp_gan.analyses import base
    register_analysis("hostile_probe", title="Probe", order=999, fast={})(_Probe)
    yield
    base._ANALYSES.pop("hostile_probe", None)


# --- 1. reports never mix ------------------------------------------------------------------------------
def test_a_report_folder_refuses_another_checkpoint_and_report_refuses_mixed_findings(tmp_path, capsys):
    a, b = _ckpt(tmp_path / "a" / "checkpoint.safetensors", 0), _ckpt(tmp_path / "b" / "checkpoint.safetensors", 1)
    data = str(_images(tmp_path / "content", 6))
    out = tmp_path / "rep"
    report, failed = analyze(a, _cfg(hostile_probe={}), out_dir=out, data=data)
    assert failed == []
    with pytest.raises(ValueError, match="another checkpoint.*use --out elsewhere or delete the folder"):
        analyze(b, _cfg(hostile_probe={}), out_dir=out, data=data)
    # the same checkpoint again is fine (a re-run)
    assert analyze(a, _cfg(hostile_probe={}), out_dir=out, data=data)[1] == []
    # a folder that is not empty and not a report: refused before any work
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a report folder"):
        analyze(a, _cfg(hostile_probe={}), out_dir=tmp_path / "junk", data=data)
    # a finding of B copied into A's report: `interp-gan report` names the file
    other = Finding.load(out / "findings" / "hostile_probe")
    other.provenance = {**other.provenance, "checkpoint_sha256": "f" * 64}
    other.save(out / "findings" / "intruder")
    capsys.readouterr()
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "findings/intruder/finding.json" in err and len(err.strip().splitlines()) == 1


# --- 3. finished work survives a failing analysis ---------------------------------------------------------
def test_any_exception_in_an_analysis_is_recorded_and_the_report_written(tmp_path, capsys):
    ck = _ckpt(tmp_path / "run" / "checkpoint.safetensors")
    data = str(_images(tmp_path / "content", 6))
    out = tmp_path / "rep"
    assert main(["analyze", str(ck), "--pipeline", str(_pipeline_file(tmp_path, error="zero")), "--out", str(out),
                 "--data", data]) == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "Traceback" not in err
    assert "hostile_probe" in err
    assert (out / "index.html").is_file()
    saved = json.loads((out / "findings" / "hostile_probe" / "finding.json").read_text())
    assert "ZeroDivisionError" in saved["skipped"]


def _pipeline_file(tmp_path, **params):
    p = tmp_path / "p.toml"
    body = "".join(f'{k} = "{v}"\n' for k, v in params.items())
    p.write_text('name = "t"\nn_images = 4\nimage_size = 32\nbatch_size = 4\ndevice = "cpu"\n'
                 f'classifiers = "none"\n[analyses.hostile_probe]\n{body}')
    return p


def test_cli_says_one_line_for_an_os_error_at_command_level(tmp_path, capsys, monkeypatch):
    import interp_gan.cli as cli

    def boom(a):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(cli, "_cmd_inspect", boom)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_fn(parser(), boom))
    assert main(["inspect", "x.safetensors"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]


def _with_fn(parser, fn):
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(fn=fn)
    return parser


# --- 2. NaN / Inf caught ---------------------------------------------------------------------------------
def _poison(G):
    with torch.no_grad():
        w = dict(G.named_parameters())["blocks.1.conv2.weight"]
        w.view(-1)[:3] = float("nan")
        w.view(-1)[3] = float("inf")


def test_nan_generator_weights_are_refused_at_load_naming_the_tensor(tmp_path, capsys):
    ck = _ckpt(tmp_path / "run" / "checkpoint.safetensors", mutate=_poison)
    with pytest.raises(ValueError, match=r"tensor 'G.blocks.1.conv2.weight' holds 4 NaN/Inf"):
        load_checkpoint(ck)
    assert main(["inspect", str(ck)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_nan_weights_in_a_third_party_state_dict_are_refused(tmp_path):
    from interp_gan.models.cyclegan import CycleGANGenerator
    from interp_gan.subject.loading import load_subject

    G = CycleGANGenerator(ngf=4, n_blocks=2)
    sd = G.state_dict()
    sd["model.1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(sd, tmp_path / "latest_net_G_A.pth")
    with pytest.raises(ValueError, match=r"tensor 'model.1.weight' holds 1 NaN/Inf"):
        load_subject(tmp_path / "latest_net_G_A.pth", device="cpu")


def test_a_model_whose_output_is_nan_fails_the_analysis_with_the_count(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import torch\nclass NaNOut(torch.nn.Module):\n"
                 "    def __init__(self):\n        super().__init__()\n        self.conv = torch.nn.Conv2d(3, 3, 1)\n"
                 "    def forward(self, x):\n        return self.conv(x) * float('nan')\n"
                 "def make():\n    return NaNOut()\n")
    data = str(_images(tmp_path / "content", 6))
    report, failed = analyze(f"{f}:make", _cfg(hostile_probe={}), out_dir=tmp_path / "rep", data=data)
    assert failed == ["hostile_probe"]
    saved = json.loads((report / "findings" / "hostile_probe" / "finding.json").read_text())
    assert "4 of 4 generated images hold NaN/Inf" in saved["skipped"]


# --- 4. check before working --------------------------------------------------------------------------
def test_out_that_is_a_file_or_unwritable_fails_before_any_analysis(tmp_path, monkeypatch):
    ck = _ckpt(tmp_path / "run" / "checkpoint.safetensors")
    (tmp_path / "afile").write_text("x")
    loaded = []
    import interp_gan.pipeline as pl
    monkeypatch.setattr(pl, "load_subject", lambda *a, **k: loaded.append(1))
    with pytest.raises(ValueError, match="is a file"):
        analyze(ck, _cfg(hostile_probe={}), out_dir=tmp_path / "afile")
    if os.geteuid() != 0:   # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(PermissionError, match="not a writable folder"):
            analyze(ck, _cfg(hostile_probe={}), out_dir=ro / "rep")
    assert loaded == []


def test_numeric_settings_of_a_pipeline_and_analyses_are_checked_at_config_time():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        PipelineConfig(batch_size=0)
    with pytest.raises(ValueError, match="n_perm = 0; expected >= 1"):
        build_analysis("dissection", n_perm=0)
    with pytest.raises(ValueError, match="n_boot = 0; expected >= 1"):
        build_analysis("dissection", n_boot=0)
    with pytest.raises(ValueError, match="iou_threshold = 1.5; expected in \\[0, 1\\]"):
        build_analysis("dissection", iou_threshold=1.5)
    with pytest.raises(ValueError, match="quantile = 1.0; expected in \\(0, 1\\)"):
        build_analysis("dissection", quantile=1.0)


def test_an_analysis_own_parameter_checks_run_before_the_model_loads(tmp_path, monkeypatch):
    """Checks an analysis makes of its own parameters (``check_params``) refuse at build time, so ``analyze``
    says so before loading (and before an hour of other analyses): attribution's max_units < 4 was refused
    only when attribution ran."""
    with pytest.raises(ValueError, match="max_units must be >= 4"):
        build_analysis("attribution", max_units=2)
    with pytest.raises(ValueError, match="unknown attribution methods \\['gradcam_typo'\\]"):
        build_analysis("attribution", methods=["ig", "gradcam_typo"])
    ck = _ckpt(tmp_path / "run" / "checkpoint.safetensors")
    loaded = []
    import interp_gan.pipeline as pl
    monkeypatch.setattr(pl, "load_subject", lambda *a, **k: loaded.append(1))
    with pytest.raises(ValueError, match="max_units must be >= 4"):
        analyze(ck, _cfg(attribution={"max_units": 2}), out_dir=tmp_path / "rep")
    assert loaded == []


def test_a_model_size_from_untrusted_metadata_is_capped(tmp_path, monkeypatch):
    ck = _rewrite_meta(_ckpt(tmp_path / "checkpoint.safetensors"),
                       model={**ModelConfig(**TINY).to_dict(), "ch": 200000})
    with pytest.raises(ValueError, match="more than the cap 2e\\+09.*INTERP_GAN_MAX_PARAMS"):
        load_checkpoint(ck)


def test_a_cyclegan_pth_implying_a_huge_ngf_is_refused_before_allocation(tmp_path, monkeypatch):
    from interp_gan.models.cyclegan import CycleGANGenerator
    from interp_gan.subject.loading import load_subject

    sd = CycleGANGenerator(ngf=4, n_blocks=2).state_dict()
    sd["model.1.weight"] = torch.zeros(4096, 3, 7, 7)       # 600k numbers implying ngf = 4096
    sd["model.1.bias"] = torch.zeros(4096)
    torch.save(sd, tmp_path / "huge.pth")
    # before: CycleGANGenerator(ngf=4096) was built to compare keys (~1e10 parameters, 40 GB)
    with pytest.raises(ValueError, match="huge.pth: not a CycleGAN-family ResNet generator"):
        load_subject(tmp_path / "huge.pth", device="cpu")
    from interp_gan.guards import check_model_size
    with pytest.raises(ValueError, match="more than the cap"):
        check_model_size(lambda: CycleGANGenerator(ngf=4096, n_blocks=9), "huge.pth")
    monkeypatch.setenv("INTERP_GAN_MAX_PARAMS", "1e12")
    check_model_size(lambda: CycleGANGenerator(ngf=4096, n_blocks=9), "huge.pth")   # raised cap: allowed


# --- 6. no debris -----------------------------------------------------------------------------------------
def test_sigterm_ends_a_command_like_ctrl_c(monkeypatch, capsys):
    import interp_gan.cli as cli

    def killed(a):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")
    monkeypatch.setattr(cli, "build_parser", lambda p=cli.build_parser: _with_fn(p(), killed))
    before = signal.getsignal(signal.SIGTERM)
    assert main(["inspect", "x"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before      # restored


def test_stale_temp_files_in_a_report_folder_are_removed(tmp_path):
    ck = _ckpt(tmp_path / "run" / "checkpoint.safetensors")
    data = str(_images(tmp_path / "content", 6))
    out = tmp_path / "rep"
    analyze(ck, _cfg(hostile_probe={}), out_dir=out, data=data)
    stale = out / ".manifest.json.x1y2.tmp"
    stale.write_text("{")
    analyze(ck, _cfg(hostile_probe={}), out_dir=out, data=data)
    assert not stale.exists()


# --- 8. errors name the real cause ---------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    (dict(style_names=None), "metadata has no 'style_names'"),
    (dict(format_version="abc"), "'format_version' is 'abc'; expected an integer"),
    (dict(style_names="abcd"), "'style_names' is 'abcd'; expected a non-empty list"),
])
def test_lying_metadata_is_one_line_naming_the_file_and_key(tmp_path, capsys, change, message):
    ck = _rewrite_meta(_ckpt(tmp_path / "checkpoint.safetensors"), **change)
    with pytest.raises(ValueError, match=message):
        read_metadata(ck)
    assert main(["inspect", str(ck)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(ck) in err[0]


def test_model_spec_mistakes_name_the_real_cause(tmp_path, capsys):
    from interp_gan.subject.loading import load_subject

    f = tmp_path / "f.py"
    f.write_text("def make():\n    pass\n")
    with pytest.raises(ValueError, match="is a Python file; name the factory"):
        load_subject(f, device="cpu")
    with pytest.raises(FileNotFoundError, match="no such file: runs/t:checkpoint.safetensors"):
        load_subject("runs/t:checkpoint.safetensors", device="cpu")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_subject("runs/t:make", device="cpu")


def test_a_bracketed_layer_name_that_matches_nothing_says_why(tiny_subject):
    from interp_gan.harvest.hooks import resolve_layers

    with pytest.raises(LookupError, match=r"glob character class.*close: blocks.0.conv1"):
        resolve_layers(tiny_subject.generator, "blocks[0].conv1")


def test_truncated_report_files_name_the_file(tmp_path, capsys):
    ck = _ckpt(tmp_path / "run" / "checkpoint.safetensors")
    data = str(_images(tmp_path / "content", 6))
    out = tmp_path / "rep"
    analyze(ck, _cfg(overview={"n_images": 2}), out_dir=out, data=data)
    capsys.readouterr()
    csvs = sorted((out / "findings" / "overview").glob("*.csv"), key=lambda p: -p.stat().st_size)
    text = csvs[0].read_bytes()
    csvs[0].write_bytes(text[: len(text) // 2 + 3])
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(csvs[0]) in err[0] and "truncated" in err[0]
    csvs[0].write_bytes(text)
    fj = out / "findings" / "overview" / "finding.json"
    fj.write_text(fj.read_text()[:50])
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(fj) in err[0]
    (out / "manifest.json").write_text((out / "manifest.json").read_text()[:40])
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json" in err[0] and "truncated" in err[0]


def test_a_state_dict_shape_mismatch_names_key_expected_and_got(tmp_path):
    ck = _ckpt(tmp_path / "checkpoint.safetensors")
    tensors = load_file(str(ck))
    tensors["G.blocks.0.conv1.weight"] = torch.zeros(5, 8, 3, 3)
    from safetensors import safe_open
    with safe_open(str(ck), framework="pt") as fh:
        meta = fh.metadata()
    save_file(tensors, str(ck), metadata=meta)
    with pytest.raises(ValueError, match=r"'G.blocks.0.conv1.weight' has shape \[5, 8, 3, 3\], expected \[8, 8, 3, 3\]"):
        load_checkpoint(ck)


# --- 7. skipped inputs visible ------------------------------------------------------------------------------
def test_bad_images_during_analysis_are_printed_and_in_the_report_overview(tmp_path, capsys):
    ck = _ckpt(tmp_path / "run" / "checkpoint.safetensors")
    content = _images(tmp_path / "content", 8)
    (content / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    report, failed = analyze(ck, _cfg(overview={"n_images": 2}), out_dir=tmp_path / "rep", data=str(content))
    assert failed == []
    assert "skipped 1 unreadable image" in capsys.readouterr().out
    page = (report / "index.html").read_text()
    assert "1 unreadable image(s) skipped" in page and "content/cut.png" in page
    assert main(["report", str(report)]) == 0       # re-rendered from the manifest: still there
    assert "1 unreadable image(s) skipped" in (report / "index.html").read_text()


def test_sigterm_removes_a_spilled_activation_store(tmp_path):
    """SIGTERM while an analysis holds a store spilled to disk: its temp folder is removed."""
    import interp_gan.cli as cli
    from interp_gan.harvest.store import ActivationStore

    previous = cli._terminate_as_interrupt()
    try:
        store = ActivationStore(memory_mb=0, directory=str(tmp_path))
        with pytest.raises(KeyboardInterrupt):
            try:
                store.add_images(0, torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
                assert store.spilled and any(tmp_path.iterdir())
                os.kill(os.getpid(), signal.SIGTERM)
            finally:
                store.close()
        assert list(tmp_path.iterdir()) == []
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_compare_names_a_truncated_manifest(tmp_path, capsys):
    ck = _ckpt(tmp_path / "run" / "checkpoint.safetensors")
    data = str(_images(tmp_path / "content", 6))
    a, _ = analyze(ck, _cfg(hostile_probe={}), out_dir=tmp_path / "a", data=data)
    b, _ = analyze(ck, _cfg(hostile_probe={}), out_dir=tmp_path / "b", data=data)
    (b / "manifest.json").write_text((b / "manifest.json").read_text()[:30])
    capsys.readouterr()
    assert main(["report", "--compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(b / "manifest.json") in err[0]
