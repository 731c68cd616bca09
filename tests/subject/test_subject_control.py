"""Subject.random_init: the random-init control swaps weights in place and always restores them."""
import pytest
import torch

from interp_gan.subject.protocol import Subject
from interp_gan.harvest.hooks import Trace


def _subject():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))
    with torch.no_grad():
        net[0].weight.fill_(0.5)                      # "trained": far from any default init
    return Subject.from_module(net)


def test_random_init_changes_outputs_and_hooks_see_it_then_restores():
    s = _subject()
    x = torch.randn(2, 3, 8, 8)
    before = s.generate(x, torch.zeros(2, dtype=torch.long)).detach().clone()
    w = s.generator[0].weight.detach().clone()
    with s.random_init(seed=3) as c:
        with Trace(c.generator, "0") as tr:
            out = c.generate(x, torch.zeros(2, dtype=torch.long))
        assert not torch.allclose(out, before)
        assert not torch.allclose(c.generator[0].weight, w)
        assert torch.allclose(tr.output, c.generator[0](x))
        again = c.generator[0].weight.detach().clone()
    with s.random_init(seed=3):
        assert torch.equal(s.generator[0].weight, again)          # seeded: the same control every time
    assert torch.equal(s.generator[0].weight, w)
    assert torch.equal(s.generate(x, torch.zeros(2, dtype=torch.long)), before)


def test_random_init_restores_on_error():
    s = _subject()
    w = s.generator[0].weight.detach().clone()
    with pytest.raises(RuntimeError):
        with s.random_init():
            raise RuntimeError("boom")
    assert torch.equal(s.generator[0].weight, w)


def test_parameters_it_cannot_redraw_are_named_in_a_warning():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)
            self.gain = torch.nn.Parameter(torch.full((1, 3, 1, 1), 2.0))   # no reset_parameters here

        def forward(self, x):
            return self.conv(x) * self.gain

    s = Subject.from_module(Scaled())
    with pytest.warns(UserWarning, match=r"1 trained tensor\(s\) \(3 values\) cannot be re-drawn .*\(gain\)"):
        with s.random_init() as c:
            assert torch.equal(s.generator.gain, torch.full((1, 3, 1, 1), 2.0))
            assert c.random_init_report.kept == {"gain": 3}


class Tabled(torch.nn.Module):
    """A conv, a learned table held as a buffer (declared), a fixed filter (declared constant) and a
    learned buffer nothing declares or resets."""
    random_init_tables = ("table",)
    random_init_constants = ("filt",)

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)
        g = torch.Generator().manual_seed(0)
        self.register_buffer("table", 2.0 + 0.5 * torch.randn(50, 40, generator=g))
        self.register_buffer("filt", torch.tensor([0.25, 0.5, 0.25]))
        self.register_buffer("offset", torch.full((3,), 0.7))

    def forward(self, x):
        return self.conv(x) + self.offset.view(1, 3, 1, 1)


def test_buffers_redrawn_as_tables_kept_as_constants_or_counted_as_kept():
    """Old code: every buffer silently kept its trained value (the control was partly trained and
    nothing said so)."""
    s = Subject.from_module(Tabled())
    table = s.generator.table.clone()
    with pytest.warns(UserWarning, match=r"\(offset\)"):
        with s.random_init(seed=1) as c:
            r = c.random_init_report
            t = s.generator.table
            assert not torch.equal(t, table)
            assert abs(float(t.mean()) - float(table.mean())) < 0.05       # its own mean and std
            assert abs(float(t.std()) - float(table.std())) < 0.05
            assert torch.equal(s.generator.filt, torch.tensor([0.25, 0.5, 0.25]))
            assert r.tables == {"table": 2000} and r.constants == {"filt": 3} and r.kept == {"offset": 3}
            notes = r.notes()
            assert notes[0].startswith("random-init control keeps 3 trained value(s) in 1 tensor(s)")
            assert "offset" in notes[0] and "re-draws 1 learned table(s)" in notes[1]
            again = t.clone()
    with pytest.warns(UserWarning):
        with s.random_init(seed=1):
            assert torch.equal(s.generator.table, again)                  # seeded
    assert torch.equal(s.generator.table, table)                           # restored


def test_a_declared_table_that_is_not_a_float_buffer_is_an_error():
    class Bad(torch.nn.Module):
        random_init_tables = ("nope",)

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)

    s = Subject.from_module(Bad())
    w = s.generator.conv.weight.clone()
    with pytest.raises(LookupError, match="random_init_tables names 'nope'"):
        with s.random_init():
            pass
    assert torch.equal(s.generator.conv.weight, w)


def test_the_report_finds_the_note_the_control_writes():
    from interp_gan.reporting.claims import KEPT_PREFIX as REPORT_PREFIX
    from interp_gan.subject.control import KEPT_PREFIX
    assert REPORT_PREFIX == KEPT_PREFIX


@pytest.mark.parametrize("api", ["parametrizations", "hooks"])
@pytest.mark.parametrize("kind", ["spectral_norm", "weight_norm"])
def test_normalised_weights_are_redrawn_not_kept_trained(kind, api):
    """``torch.nn.utils.parametrizations.spectral_norm`` / ``weight_norm``, and the older hook-based
    wrappers (a forward pre-hook computes ``weight`` from ``weight_orig`` or ``weight_g`` / ``weight_v``;
    SAGAN / BigGAN-style generators use them): a reset alone draws into the computed ``weight``, and
    the control kept the trained network (the hook-based ones until 2026-12-03)."""
    import warnings
    from torch.nn.utils import parametrizations
    torch.manual_seed(0)
    wrap = getattr(parametrizations if api == "parametrizations" else torch.nn.utils, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)          # the hook-based weight_norm's deprecation
        net = torch.nn.Sequential(wrap(torch.nn.Conv2d(3, 8, 3, padding=1)), torch.nn.ReLU(),
                                  wrap(torch.nn.Conv2d(8, 3, 3, padding=1)), torch.nn.Tanh())
    with torch.no_grad():                             # "trained": far from any default init
        for k, v in net.state_dict(keep_vars=True).items():
            if ("original" in k or k.endswith(("weight_orig", "weight_g", "weight_v"))) and v.requires_grad:
                v.fill_(0.3)
    net.eval()
    s = Subject.from_module(net)
    x = torch.randn(2, 3, 8, 8)
    trained = net.state_dict()
    before = s.generate(x, torch.zeros(2, dtype=torch.long)).detach().clone()
    with s.random_init(seed=1) as c:
        assert not c.random_init_report.kept, c.random_init_report.kept
        assert not torch.allclose(c.generate(x, torch.zeros(2, dtype=torch.long)), before)
        w = c.generator[0].weight.detach()
        assert not torch.allclose(w, torch.full_like(w, w.flatten()[0]))     # not the constant "trained" fill
        if kind == "spectral_norm":                   # u, v iterated on the new weight: sigma ~ 1 again
            assert torch.linalg.matrix_norm(w.flatten(1), ord=2) == pytest.approx(1.0, abs=0.05)
    assert all(torch.equal(v, trained[k]) for k, v in net.state_dict().items())
    assert torch.equal(s.generate(x, torch.zeros(2, dtype=torch.long)), before)
