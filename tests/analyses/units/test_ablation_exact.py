"""p_zero of the ablation analysis: exact over all sign patterns for n <= 20 paired values (no floor,
and no floor note), Monte Carlo flips above (floor 1/(n_perm + 1), noted)."""
import numpy as np

from interp_gan.analyses.units.ablation import SIGNFLIP_EXACT_MAX_N, Ablation
from test_style_units import make_planted_data, make_planted_subject


def test_exact_p_zero_rows_have_no_floor_note_and_monte_carlo_rows_keep_it():
    subject = make_planted_subject()
    f = Ablation(layer="mix", ks=(1,), n_random=0, n_boot=50, n_perm=9, seed=0, styles=["checker"]).run(
        subject, make_planted_data(n_per_style=12))
    top = f.tables["ablation"].query("baseline == 'top'")
    assert (top["n"] == 12).all() and 12 <= SIGNFLIP_EXACT_MAX_N
    p = top["p_zero"].to_numpy()
    assert np.allclose(p * 2 ** 11, np.round(p * 2 ** 11)) and p.min() < 1 / 10    # k / 2^(n-1): below 1/(9+1)
    assert not any("p_zero values" in n for n in f.notes), f.notes                 # old: "sit at the floor"
    assert any("exact over all 2^n sign patterns" in n for n in f.notes)
    # 24 images per style: Monte Carlo flips, their floor 1/10 and its note
    f = Ablation(layer="mix", ks=(1,), n_random=0, n_boot=50, n_perm=9, seed=0, styles=["checker"]).run(
        subject, make_planted_data(n_per_style=24))
    top = f.tables["ablation"].query("baseline == 'top'")
    assert (top["n"] == 24).all() and np.allclose(top["p_zero"] * 10, np.round(top["p_zero"] * 10))
    assert any("p_zero values" in n and "permutation floor" in n for n in f.notes), f.notes
