"""Training dynamics (analyses/dynamics.py) on planted snapshots: a sequence of tiny seeded toy
generators stands in for the steps of a run.

Layer ``mix`` has 6 channels, each a fixed content feature (the same conv at every step) plus a
per-style offset. Unit A (channel 2) gets its style-0 offset with strength 0, 0, 1, 1 at steps
0, 100, 200, 300: it must appear at step 200, by identity and by match alike. Unit B carries
style 2 at every step but moves: at steps 0 and 100 it is channel 1 (channels 1 and 4 swapped),
from step 200 on channel 4. By identity (channel 4 throughout) it appears at step 200; by
activation match it is found in channel 1 and was selective from step 0.
"""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from interp_gan.analyses.base import AnalysisData
from interp_gan.analyses.dynamics import StepRecord, build_dynamics, collect_step, emergence, match_units
from interp_gan.analyses.units.style_units import StyleUnits
from interp_gan.findings import Finding
from interp_gan.findings.stats import wilson_interval
from interp_gan.subject.protocol import Subject

STYLES = ["checker", "plain", "stripes"]
UNIT_A, UNIT_B, B_EARLY = 2, 4, 1
STEPS = [0, 100, 200, 300]
STRENGTH_A = [0.0, 0.0, 1.0, 1.0]


class Permute(nn.Module):
    """Channel ``i`` of the output is channel ``perm[i]`` of the input: where a unit lives."""

    def __init__(self, perm: list[int]) -> None:
        super().__init__()
        self.register_buffer("perm", torch.tensor(perm))

    def forward(self, h):
        return h[:, self.perm]


class StepG(nn.Module):
    def __init__(self, strength_a: float, perm: list[int], channels: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)                        # the same content features at every step
        self.encoder = nn.Conv2d(3, channels, 3, padding=1)
        table = torch.zeros(len(STYLES), channels)
        table[0, UNIT_A] = 3.0 * strength_a
        table[2, UNIT_B] = 3.0                      # B carries its style at every step
        self.register_buffer("table", table)
        self.mix = Permute(perm)
        self.decoder = nn.Conv2d(channels, 3, 1)

    def forward(self, content, style_ids):
        h = self.mix(self.encoder(content) + self.table[style_ids][:, :, None, None])
        return torch.tanh(content + 0.1 * self.decoder(h))


def _subject(step: int) -> Subject:
    i = STEPS.index(step)
    perm = list(range(6))
    if step < 200:                                   # B lives in channel 1 early on
        perm[B_EARLY], perm[UNIT_B] = UNIT_B, B_EARLY
    G = StepG(STRENGTH_A[i], perm).eval()
    return Subject(generator=G, style_names=list(STYLES), _generate=lambda c, s, z=None: G(c, s))


def _data(n_per_style: int = 16, size: int = 12) -> AnalysisData:
    g = torch.Generator().manual_seed(1)
    n = n_per_style * len(STYLES)
    return AnalysisData(content=torch.rand(n, 3, size, size, generator=g) * 2 - 1,
                        style_ids=torch.arange(n) % len(STYLES), batch_size=16, fingerprint="planted-steps")


def _records(steps=STEPS):
    data = _data()
    out = []
    for s in steps:
        subject = _subject(s)
        f = StyleUnits(layers=["mix"], n_perm=200, control=False).run(subject, data)
        means, scores = collect_step(subject, data, ["mix"], seed=0, classifiers={})
        out.append(StepRecord(s, {"style_units": f}, means, scores))
    return out


def test_planted_emergence_and_a_moving_unit_tracked_by_match_not_identity():
    f = build_dynamics(_records(), top_k=1, groups=_data().style_ids.numpy())
    em = f.tables["dynamics_emergence"].set_index(["layer", "unit", "style", "tracking"])
    a_id, a_match = em.loc[("mix", UNIT_A, "checker", "identity")], em.loc[("mix", UNIT_A, "checker", "match")]
    assert a_id["first_step"] == 200 and a_id["stable_step"] == 200     # exactly the planted step
    assert a_match["first_step"] == 200 and a_match["stable_step"] == 200
    b_id, b_match = em.loc[("mix", UNIT_B, "stripes", "identity")], em.loc[("mix", UNIT_B, "stripes", "match")]
    assert b_id["first_step"] == 200 and b_id["stable_step"] == 200     # identity loses it while it moved
    assert b_match["first_step"] == 0 and b_match["stable_step"] == 0   # the match follows it
    assert b_match["unit_at_first"] == B_EARLY and b_match["min_match_corr"] > 0.95

    dyn = f.tables["dynamics"]
    sel = dyn[(dyn["measure"] == "style_selectivity") & (dyn["unit"] == UNIT_B) & (dyn["style"] == "stripes")]
    early = sel[sel["step"] < 200].set_index("tracking")
    assert (sel[sel["tracking"] == "match"].sort_values("step")["matched_unit"].tolist()
            == [B_EARLY, B_EARLY, UNIT_B, UNIT_B])
    assert early.loc["match", "ci_low"].min() > 0.5                       # selective where the match found it
    assert (early.loc["identity", "ci_low"] < 0.5).all() and (early.loc["identity", "ci_high"] > 0.5).all()

    m = f.tables["dynamics_matches"].set_index(["step", "layer", "unit"])
    assert m.loc[(0, "mix", UNIT_B), "matched_unit"] == B_EARLY and m.loc[(0, "mix", UNIT_B), "match_corr"] > 0.95
    assert m.loc[(0, "mix", UNIT_B), "identity_corr"] < 0.5
    assert m.loc[(300, "mix", UNIT_B), "matched_unit"] == UNIT_B and m.loc[(300, "mix", UNIT_B), "match_corr"] > 0.999
    # columns of the stable table
    assert list(dyn.columns[:13]) == ["step", "measure", "tracking", "layer", "unit", "matched_unit", "match_corr",
                                      "concept", "style", "method", "value", "ci_low", "ci_high"]


def test_emergence_first_and_stable():
    s = [0, 10, 20, 30, 40]
    assert emergence(s, [False, True, False, True, True]) == (10.0, 30.0)
    assert emergence(s, [True, True, True, True, True]) == (0.0, 0.0)
    first, stable = emergence(s, [True, True, False, False, False])
    assert first == 0 and np.isnan(stable)                 # it came and went: not stable
    assert all(np.isnan(emergence(s, [False] * 5)))


def test_match_units_finds_a_permutation_and_ignores_constant_units():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    perm = np.array([3, 0, 4, 1, 2])
    other = np.empty_like(x)
    other[:, perm] = x * 2 + 1                               # unit u of x is column perm[u] of other, rescaled
    best, corr, ident = match_units(x, other)
    assert best.tolist() == perm.tolist() and np.allclose(corr, 1.0)
    assert np.allclose(ident, [np.corrcoef(x[:, u], other[:, u])[0, 1] for u in range(5)])
    other[:, 3] = 7.0                                        # a dead unit matches nothing
    best, corr, _ = match_units(x, other)
    assert 3 not in best.tolist() and np.isfinite(corr).all()
    x[:, 2] = 1.0                                            # nor does a dead unit at the final step
    best, corr, _ = match_units(x, other)
    assert best[2] == -1 and np.isnan(corr[2])


def test_matching_within_styles_ignores_a_shared_style_preference():
    # final unit 0 = style offset + content feature c; at the earlier step unit 0 has the same content
    # feature without the offset, unit 1 the same style offset with other content. Pooled over all
    # images the style offset dominates (unit 1 wins); within styles the content decides (unit 0).
    rng = np.random.default_rng(0)
    y = np.arange(48) % 3
    c, other_c = rng.normal(size=48), rng.normal(size=48)
    final = (4.0 * (y == 0) + c)[:, None]
    early = np.stack([c, 4.0 * (y == 0) + other_c], 1)
    assert match_units(final, early)[0][0] == 1
    best, corr, _ = match_units(final, early, groups=y)
    assert best[0] == 0 and corr[0] == pytest.approx(1.0)


def _dissection(labels: dict[str, int], n_units: int = 20) -> Finding:
    rows = []
    for c, k in labels.items():
        rows += [dict(layer="L", unit=len(rows) + i, concept=c, labelled=True) for i in range(k)]
    rows += [dict(layer="L", unit=len(rows) + i, concept="red", labelled=False) for i in range(n_units - len(rows))]
    return Finding("dissection", tables={"dissection_units": pd.DataFrame(rows)})


def test_labelled_units_per_concept_and_classifier_rows():
    recs = [StepRecord(0, {"dissection": _dissection({})}, {}, {"rgb": (5, 40)}),
            StepRecord(10, {"dissection": _dissection({"red": 2})}, {}, {"rgb": (20, 40)}),
            StepRecord(20, {"dissection": _dissection({"red": 3, "edges": 1})}, {}, {"rgb": (38, 40)})]
    rows = [{"step": 5, "loss_g": 1.0}, {"step": 10, "eval": {"acc_rgb": 0.5, "ssim": 0.3, "n": 8}}]
    dyn = build_dynamics(recs, metrics_rows=rows, n_styles=4).tables["dynamics"]
    lab = dyn[dyn["measure"] == "labelled_units"].set_index(["step", "concept"])["value"]
    assert lab.to_dict() == {(0, "edges"): 0, (0, "red"): 0, (10, "edges"): 0, (10, "red"): 2,
                             (20, "edges"): 1, (20, "red"): 3}
    r = dyn[(dyn["measure"] == "labelled_units") & (dyn["step"] == 20) & (dyn["concept"] == "red")].iloc[0]
    lo, hi = wilson_interval(3, 20)
    assert r["ci_low"] == pytest.approx(20 * lo) and r["ci_high"] == pytest.approx(20 * hi) and r["n"] == 20
    acc = dyn[dyn["measure"] == "classifier_accuracy"].set_index("step")
    assert acc["value"].tolist() == [5 / 40, 20 / 40, 38 / 40]
    assert acc["excludes_chance"].tolist() == [False, True, True]    # chance 1/4
    ev = dyn[dyn["measure"] == "train_eval"].set_index("method")
    assert set(ev.index) == {"acc_rgb", "ssim"} and (ev["step"] == 10).all()
    assert ev.loc["acc_rgb", "ci_low"] == pytest.approx(wilson_interval(4, 8)[0]) and np.isnan(ev.loc["ssim", "ci_low"])
    skipped = build_dynamics(recs[:1])
    assert skipped.skipped and "at least 2" in skipped.skipped
