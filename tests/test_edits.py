"""Model edits (interp_gan.edits): an edited checkpoint reproduces, image for image, the ablation
the ablation analysis measures; edits that cannot be baked are re-applied as hooks on load;
`inspect` and the report's first screen say what was edited."""
import numpy as np
import pytest
import torch

from interp_gan.analyses.units.ablation import _measured_pass
from interp_gan.checkpoint import read_metadata, save_checkpoint
from interp_gan.cli import main
from interp_gan.config import ModelConfig, Recipe
from interp_gan.edits import ModelEdit, UnitEdit, parse_edit_arg
from interp_gan.harvest.hooks import ablate
from interp_gan.models import StyleNet
from interp_gan.subject.loading import load_subject
from interp_gan.util import sha256_file

from conftest import make_tiny_data


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    mc = ModelConfig(ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)
    G = StyleNet(2, ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)
    return save_checkpoint(tmp_path / "checkpoint.safetensors", generator=G, style_names=["a", "b"],
                           recipe=Recipe(model=mc), step=3, fingerprint="f" * 64)


def _images(subject, data, layer=None, edit=None):
    sel = torch.arange(len(data.content))
    return _measured_pass(subject, data, data.z, sel, lambda im: {"img": im.flatten(1).numpy()}, 7,
                          layer, edit)["img"]


def test_baked_ablation_reproduces_the_analysis_ablation_image_for_image(ckpt, tmp_path):
    src = load_subject(ckpt, device="cpu")
    data = make_tiny_data(src, n=6, size=32)
    measured = _images(src, data, "blocks.1.conv2", ablate([1, 3], 0.0))      # what Ablation._diff runs
    plain = _images(src, data)
    out = ModelEdit.ablate("blocks.1.conv2", [1, 3]).save(tmp_path / "edited.safetensors", source=ckpt)
    meta = read_metadata(out)
    assert meta["edits"][0] | {} == {"layer": "blocks.1.conv2", "units": [1, 3], "kind": "ablate", "value": 0.0,
                                     "applied": "weights", "source_sha256": sha256_file(ckpt),
                                     "tool": meta["edits"][0]["tool"]}
    assert meta["edited_from"]["sha256"] == sha256_file(ckpt)
    edited = load_subject(out, device="cpu")
    assert not hasattr(edited, "_edit_hooks")          # baked: no hook needed
    got = _images(edited, data)
    assert np.array_equal(got, measured)               # bit for bit
    assert not np.allclose(got, plain)                  # and the edit does something


@pytest.mark.parametrize("edit, applied", [
    (ModelEdit.ablate("blocks.1", [0, 2]), "hook"),                     # a block's output: not a conv
    (ModelEdit.insert("blocks.0.conv1", [1], 2.5), "weights"),
    (ModelEdit.scale("blocks.0.conv1", [1, 2], 0.5), "weights"),        # power of two: exact
    (ModelEdit.scale("blocks.0.conv1", [1, 2], 0.3), "hook"),
    (ModelEdit.ablate("blocks.1.norm1", [1]).scale("decoder.net.0", [0], 4.0), None),
])
def test_saved_edit_equals_in_memory_hooks(ckpt, tmp_path, edit, applied):
    src = load_subject(ckpt, device="cpu")
    data = make_tiny_data(src, n=4, size=32)
    plain = _images(src, data)
    with edit.apply(src):
        want = _images(src, data)
        assert src.meta["edits"]
    assert np.array_equal(_images(src, data), plain) and not src.meta["edits"]   # removed on exit
    out = edit.save(tmp_path / "e.safetensors", source=ckpt)
    meta = read_metadata(out)
    if applied:
        assert [e["applied"] for e in meta["edits"]] == [applied]
    got = _images(load_subject(out, device="cpu"), data)
    assert not np.allclose(want, plain)
    np.testing.assert_array_equal(got, want)


def test_edits_of_an_edited_checkpoint_accumulate(ckpt, tmp_path):
    one = ModelEdit.ablate("blocks.1", [0]).save(tmp_path / "1.safetensors", source=ckpt)
    two = ModelEdit.ablate("blocks.1.conv2", [2]).save(tmp_path / "2.safetensors", source=one)
    meta = read_metadata(two)
    assert [e["layer"] for e in meta["edits"]] == ["blocks.1", "blocks.1.conv2"]
    assert meta["edits"][0]["source_sha256"] == sha256_file(ckpt)
    assert meta["edited_from"]["sha256"] == sha256_file(one)
    src = load_subject(ckpt, device="cpu")
    data = make_tiny_data(src, n=4, size=32)
    with (ModelEdit.ablate("blocks.1", [0]).ablate("blocks.1.conv2", [2])).apply(src):
        want = _images(src, data)
    np.testing.assert_array_equal(_images(load_subject(two, device="cpu"), data), want)


def test_cli_edit_and_inspect_round_trip(ckpt, tmp_path, capsys):
    out = tmp_path / "edited.safetensors"
    rc = main(["edit", str(ckpt), "--ablate", "blocks.1.conv2:1,3", "--scale", "blocks.1:0=0.3", "--out", str(out)])
    printed = capsys.readouterr().out
    line = f"edited from {sha256_file(ckpt)[:12]}: ablate blocks.1.conv2 units 1,3; scale blocks.1 units 0 x 0.3"
    assert rc == 0 and line in printed
    rc = main(["inspect", str(out), "--size", "32"])
    printed = capsys.readouterr().out
    assert rc == 0 and line in printed and '"applied": "hook"' in printed
    rc = main(["inspect", str(ckpt), "--size", "32"])
    assert rc == 0 and "edited from" not in capsys.readouterr().out


@pytest.mark.parametrize("args, msg", [
    (["--ablate", "blocks.1.conv2:1,99"], "out of range"),
    (["--ablate", "blocks.9.conv2:1"], "no layer named"),
    (["--insert", "blocks.1.conv2:1"], "LAYER:UNITS=VALUE"),
    (["--ablate", "blocks.1.conv2:a"], "integers"),
    ([], "nothing to edit: give --ablate, --insert, --scale, --remove-style or --insert-style"),
])
def test_cli_edit_errors_are_one_line(ckpt, tmp_path, capsys, args, msg):
    out = tmp_path / "x.safetensors"
    rc = main(["edit", str(ckpt), *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and "Traceback" not in err and not out.exists()


def test_parse_edit_arg():
    assert parse_edit_arg("ablate", "blocks.3.conv2:12,40") == UnitEdit("blocks.3.conv2", (12, 40), "ablate", 0.0)
    assert parse_edit_arg("insert", "a.b:1=2.5") == UnitEdit("a.b", (1,), "insert", 2.5)
    with pytest.raises(ValueError, match="repeated"):
        parse_edit_arg("ablate", "a:1,1")


def test_report_first_screen_says_edited(tmp_path):
    from interp_gan.reporting import ReportContext, write_report

    meta = {"checkpoint_sha256": "b" * 64, "edited_from": {"sha256": "a" * 64},
            "edits": [{"layer": "blocks.3.conv2", "units": [12, 40], "kind": "ablate", "value": 0.0}]}
    out = write_report(tmp_path / "r", {}, ReportContext(name="r", meta=meta, findings={}, style_names=["a"]),
                       static_figures=False, paper=False)
    page = (out / "index.html").read_text()
    header = page[page.index("<header>"):page.index("</header>")]
    assert "edited from aaaaaaaaaaaa: ablate blocks.3.conv2 units 12,40" in header
    out2 = write_report(tmp_path / "r2", {}, ReportContext(name="r", meta={}, findings={}, style_names=["a"]),
                        static_figures=False, paper=False)
    assert "edited from" not in (out2 / "index.html").read_text()
