"""Voynov & Babenko: learned directions must land in the subspace the generator actually uses."""
import numpy as np
import pytest
import torch

from interp_gan.analyses.base import build_analysis
from interp_gan.analyses.directions.analysis import Directions  # noqa: F401  (registers "directions")
from interp_gan.analyses.directions.voynov import (Reconstructor, fit_voynov_babenko,
                                                   voynov_babenko_directions)

from conftest import make_tiny_data, make_tiny_subject

DIM = 8


def _planted(seed=0):
    """A 'generator' whose colour depends on the code only through u1 (red) and u2 (green)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=g))
    u = q[:, :2].T.contiguous()                                   # [2, DIM] orthonormal rows
    content = torch.rand(8, 3, 16, 16, generator=g) * 2 - 1      # fixed per batch

    def render(codes):                                            # [B, DIM] -> [B, 3, 16, 16]
        a = torch.tanh(0.5 * codes @ u.T)                         # saturating, like pixel values
        colour = torch.stack([a[:, 0], a[:, 1], torch.zeros_like(a[:, 0])], 1)[:, :, None, None]
        return 0.3 * content[: len(codes)] + 0.6 * colour
    return render, u.numpy()


def _in_span(dirs, u):
    return np.linalg.norm(dirs @ u.T, axis=1)                     # projection norm of each unit row


@pytest.mark.slow
def test_learned_directions_lie_in_the_planted_subspace():
    torch.manual_seed(0)
    render, u = _planted()
    # Not every seed succeeds (7 of 10 single runs, see the module docstring). Seed 1 is one
    # that succeeds; the accuracy assert below is the check a user relies on to tell a failed run.
    fit = fit_voynov_babenko(render, DIM, 2, steps=300, batch_size=8, seed=1)
    untrained = fit_voynov_babenko(render, DIM, 2, steps=0, seed=1).directions   # same init, no training
    learned, control = _in_span(fit.directions, u), _in_span(untrained, u)
    print(f"in-span norm learned {learned.round(3)}, untrained {control.round(3)}, "
          f"accuracy {fit.accuracy:.2f}, shift error {fit.shift_error:.3f}")
    assert fit.directions.shape == (2, DIM)
    assert np.allclose(np.linalg.norm(fit.directions, axis=1), 1)
    assert abs(fit.directions[0] @ fit.directions[1]) < 1e-6      # orthonormal variant
    assert learned.min() >= 0.9                                   # both directions inside span(u1, u2)
    assert control.min() < 0.75                                   # the starting point was not
    assert fit.accuracy >= 0.9                                    # and the reconstructor tells them apart


@pytest.mark.slow
def test_restarts_keep_the_lowest_loss_run_and_rescue_a_failed_seed():
    render, u = _planted()
    single = fit_voynov_babenko(render, DIM, 2, steps=300, batch_size=8, seed=0)
    fit = fit_voynov_babenko(render, DIM, 2, steps=300, batch_size=8, seed=0, restarts=3)
    print(f"seed 0 alone: in-span {_in_span(single.directions, u).round(3)}, loss {single.loss:.3f}; "
          f"restart losses {np.round(fit.restart_losses, 3)}, kept {fit.chosen}")
    assert _in_span(single.directions, u).min() < 0.9              # seed 0 on its own fails ...
    assert fit.restart_losses[0] == pytest.approx(single.loss)     # ... restart 0 is that same run
    assert fit.chosen == int(np.argmin(fit.restart_losses)) and fit.loss == min(fit.restart_losses)
    assert _in_span(fit.directions, u).min() >= 0.9                # ... and a restart recovers the subspace
    with pytest.raises(ValueError, match="restarts must be >= 1"):
        fit_voynov_babenko(render, DIM, 2, steps=1, restarts=0)


def test_random_directions_score_low_on_the_same_measure():
    rng = np.random.default_rng(0)
    _, u = _planted()
    r = rng.standard_normal((200, DIM))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    score = _in_span(r, u)
    print(f"random unit directions: mean in-span norm {score.mean():.3f}, share >= 0.9: {(score >= 0.9).mean():.3f}")
    assert score.mean() < 0.6 and (score >= 0.9).mean() < 0.05   # a 0.9 bar is not met by chance


def test_seeded_and_generator_left_untouched():
    render, _ = _planted()
    w = torch.nn.Parameter(torch.ones(1))                          # a "generator" parameter in the graph
    scaled = lambda c: render(c) * w                               # noqa: E731
    a = voynov_babenko_directions(scaled, DIM, 2, steps=5, seed=3)
    b = voynov_babenko_directions(scaled, DIM, 2, steps=5, seed=3)
    c = voynov_babenko_directions(scaled, DIM, 2, steps=5, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert w.grad is None                                          # G is frozen: no gradient lands in it
    lo, hi = Reconstructor(3)(torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 64, 64))
    assert lo.shape == (2, 3) and hi.shape == (2,)


def test_bad_inputs_raise_clear_errors():
    render, _ = _planted()
    with pytest.raises(ValueError, match="do not fit"):
        fit_voynov_babenko(render, 2, 3, steps=1)
    with pytest.raises(ValueError, match="eps_range"):
        fit_voynov_babenko(render, DIM, 2, steps=1, eps_range=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"base must be codes \[N, 8\]"):
        fit_voynov_babenko(render, DIM, 2, steps=1, base=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="render must return images"):
        fit_voynov_babenko(lambda c: render(c)[:1], DIM, 2, steps=1)


def test_analysis_runs_voynov_with_its_random_baseline_on_the_tiny_stylenet():
    subject = make_tiny_subject()
    data = make_tiny_data(subject, n=8)
    kw = dict(methods=("voynov", "random"), n_samples=32, n_directions=2, n_random=2, n_images=8, steps=(0.0, 2.0), n_boot=20,
              n_perm=20, voynov_steps=20, voynov_batch_size=4, voynov_restarts=2)
    f = build_analysis("directions", **kw).run(subject, data)
    again = build_analysis("directions", **kw).run(subject, data)
    assert np.array_equal(f.arrays["directions"], again.arrays["directions"])     # same seed, same directions
    df = f.tables["directions"]
    vb = df[df.method == "voynov"]
    print(df[["method", "index", "style", "effect", "p_random", "ssim_min"]].to_string())
    print([n for n in f.notes if n.startswith("voynov")])
    assert len(vb) == 2 and set(vb.space) == {"style_code"} and list(vb.label) == ["vb0", "vb1"]
    assert len(df[df.method == "random"]) == 2
    dirs = f.arrays["directions"][vb.index.to_numpy()]
    assert dirs.shape == (2, subject.style_dim) and np.allclose(np.linalg.norm(dirs, axis=1), 1, atol=1e-5)
    assert (vb.ssim_min < 1).all()                                 # the learned edits change the image
    assert vb.p_random.notna().all()                               # compared against the random baseline
    assert any(n.startswith("voynov: 2 run(s) of 20 steps") and "kept run" in n and "accuracy" in n for n in f.notes)
    from interp_gan.reporting import ReportContext
    from interp_gan.reporting.section_directions import directions_section
    assert "voynov2020unsupervised" in directions_section(f, ReportContext()).references   # cited when used
    assert not any("not run" in n for n in f.notes)
    assert all(p.grad is None for p in subject.generator.parameters())


def test_activation_space_voynov_on_a_layer():
    subject = make_tiny_subject()
    data = make_tiny_data(subject, n=8)
    f = build_analysis("directions", space="activation", layer="blocks.0.conv1", methods=("voynov",),
                       n_samples=8, n_directions=2, n_images=8, steps=(0.0, 2.0), n_boot=20, n_perm=20,
                       voynov_steps=5, voynov_batch_size=4, voynov_restarts=1).run(subject, data)
    df = f.tables["directions"]
    assert list(df.method) == ["voynov", "voynov"] and set(df.space) == {"activation"}
    assert f.arrays["directions"].shape[0] == 2
