"""NVlabs network pickles read without running their code (interp_gan.subject.nvlabs_pickle).

Snapshots are written in the test in NVlabs' exact format (tests/subject/nvlabs_snapshot.py):
persistent objects as ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` calls,
tensors through torch's own reduce (``_rebuild_tensor_v2`` / ``_rebuild_parameter`` +
``torch.storage._load_from_bytes``), EasyDicts and numpy scalars.
"""
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from interp_gan.subject.loading import load_subject
from interp_gan.subject.nvlabs_pickle import (ALLOWED, PersistentObject, UnsafePickleError, loads_network_pickle,
                                              read_network_pickle)
from tests.subject.nvlabs_snapshot import nvlabs_modules, persistent, snapshot_dict, tiny_generator, write_snapshot

ROOT = Path(__file__).resolve().parents[2]


def test_reads_every_network_as_data(tmp_path):
    G = tiny_generator(16, c_dim=2)
    snap = read_network_pickle(write_snapshot(tmp_path / "snap.pkl", G))
    assert set(snap) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    g = snap["G_ema"]
    assert isinstance(g, PersistentObject) and g.class_name == "Generator"
    assert g.init_kwargs["c_dim"] == 2 and g.init_kwargs["synthesis_kwargs"]["conv_clamp"] == 256
    assert isinstance(g.init_kwargs["mapping_kwargs"], dict)
    sd = g.state_dict()
    ref = G.state_dict()
    assert set(sd) == set(ref)
    assert all(torch.equal(sd[k], ref[k]) for k in ref)
    # numpy scalars come back as numpy scalars
    assert snap["training_set_kwargs"]["ada_target"] == np.float32(0.6)
    assert isinstance(dict(g.named_objects())["mapping.fc0"].attributes["weight_gain"], np.floating)
    assert snap["D"].class_name == "Discriminator" and snap["augment_pipe"] is None


def test_tensor_views_and_dtypes_round_trip():
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    objs = {"view": base[1:, ::2], "half": torch.randn(3).half(), "long": torch.arange(5),
            "bool": torch.tensor([True, False]), "empty": torch.zeros(0, 3)}
    back = loads_network_pickle(pickle.dumps(objs, protocol=4))
    for k, v in objs.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k


PAYLOAD = "open({path!r}, 'w').write('pwned')\n"


def _malicious(tmp_path, marker):
    G = tiny_generator(8)
    return write_snapshot(tmp_path / "evil.pkl", G, source=PAYLOAD.format(path=str(marker)) + "import torch\n")


def test_malicious_module_source_is_never_run(tmp_path, monkeypatch):
    marker = tmp_path / "pwned.txt"
    path = _malicious(tmp_path, marker)
    # the payload is real: executing the embedded source (what NVlabs' reconstruct does) writes the file
    src = read_network_pickle(path)["G_ema"].module_src
    probe = tmp_path / "probe.txt"
    exec(compile(src.replace(str(marker), str(probe)), "<module_src>", "exec"), {})   # noqa: S102 - the control
    assert probe.read_text() == "pwned"
    for env in (None, "1"):
        if env:
            monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", env)
        subject = load_subject(str(path), device="cpu")
        subject.generate(torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
        assert not marker.exists()


def test_malicious_pickle_runs_nothing_in_a_fresh_process(tmp_path):
    """The same through the CLI, with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 in the environment."""
    marker = tmp_path / "pwned.txt"
    path = _malicious(tmp_path, marker)
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "interp_gan.cli", "convert", str(path), str(tmp_path / "o.safetensors")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not marker.exists()


class _Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return self.fn, (self.arg,)


@pytest.mark.parametrize("fn", [os.system, eval, getattr(subprocess, "getoutput")])
def test_unknown_global_is_refused_in_one_line(tmp_path, fn):
    marker = tmp_path / "pwned.txt"
    with nvlabs_modules():
        snap = snapshot_dict(tiny_generator(8))
        snap["augment_pipe"] = _Evil(fn, f"open({str(marker)!r}, 'w')" if fn is eval else f"touch {marker}")
        path = tmp_path / "evil.pkl"
        path.write_bytes(pickle.dumps(snap, protocol=4))
    with pytest.raises(UnsafePickleError) as e:
        read_network_pickle(path)
    msg = str(e.value)
    assert "\n" not in msg and f"{fn.__module__}.{fn.__name__}" in msg and "refusing" in msg
    assert not marker.exists()
    with pytest.raises(UnsafePickleError):
        load_subject(str(path), device="cpu")


def test_a_global_inside_a_tensor_storage_is_refused():
    inner = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(obj, inner, protocol=2)
    inner.write(b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R.")
    evil = pickle.dumps(_Evil(torch.storage._load_from_bytes, inner.getvalue()), protocol=4)
    with pytest.raises(UnsafePickleError, match="posix.system inside a tensor storage"):
        loads_network_pickle(evil)


def test_allow_list_is_short_and_names_no_callable_that_runs_code():
    mods = {m for m, _ in ALLOWED}
    assert mods <= {"torch_utils.persistence", "torch._utils", "torch.storage", "collections", "dnnlib.util",
                    "dnnlib", "numpy.core.multiarray", "numpy._core.multiarray", "numpy"}
    assert all(fn.__module__ == "interp_gan.subject.nvlabs_pickle" or fn in (dict,) for fn in ALLOWED.values())


def test_a_stylegan2_generator_with_a_stylegan3_input_is_refused_in_one_line(tmp_path):
    """StyleGAN3 pickles load now (tests/subject/test_stylegan3_pickle.py); the old refusal ("not
    implemented in interp_gan") is gone. A StyleGAN2 Generator with a Fourier-feature input grafted in
    is read as StyleGAN3 and refused in one line: its kwargs are StyleGAN2's."""
    import interp_gan.subject.stylegan as sg
    assert not hasattr(sg, "_STYLEGAN3")
    G = tiny_generator(8)
    with nvlabs_modules():
        snap = snapshot_dict(G)
        synthesis_input = persistent("SynthesisInput", {"freqs": torch.randn(4, 2)}, {}, {}, {})
        snap["G_ema"].meta["state"]["_modules"]["synthesis"].meta["state"]["_modules"]["input"] = synthesis_input
        path = tmp_path / "sg3.pkl"
        path.write_bytes(pickle.dumps(snap, protocol=4))
    with pytest.raises(ValueError, match=r"StyleGAN3 Generator has init_kwargs this reader does not know: "
                                         r"\['synthesis_kwargs'\]") as e:
        load_subject(str(path), device="cpu")
    assert "\n" not in str(e.value) and "not implemented" not in str(e.value)


def test_wrong_weights_are_a_one_line_error(tmp_path):
    G = tiny_generator(8)
    with nvlabs_modules():
        snap = snapshot_dict(G)
        snap["G_ema"].meta["state"]["_init_kwargs"]["w_dim"] = 32      # kwargs that do not fit the weights
        path = tmp_path / "bad.pkl"
        path.write_bytes(pickle.dumps(snap, protocol=4))
    with pytest.raises(ValueError) as e:
        load_subject(str(path), device="cpu")
    assert "\n" not in str(e.value) and "bad.pkl" in str(e.value)


def test_not_a_snapshot(tmp_path):
    p = tmp_path / "list.pkl"
    p.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="expected an NVlabs snapshot dict"):
        load_subject(str(p), device="cpu")
