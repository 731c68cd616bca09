"""Every verdict word in a claim or a summary sentence sits beside the number it reads, and the
words agree with that number at the boundary: a p_random at its floor that BH does not let through
is printed with its q; "beat every baseline set" is said only when p_random = 0.05 means that (19
sets); a rate is printed with its interval; a pair that agrees by construction is not counted as an
independent agreement."""
from __future__ import annotations

import numpy as np
import pandas as pd

from interp_gan.reporting.section_ablation import claim as ablation_claim, summary_sentence, summary_table


def _ablation_rows(n_sets: int, p: list[float], q: list[float]) -> pd.DataFrame:
    rows = []
    for style, pv, qv in zip("abcd", p, q):
        for base in ("top", "random"):
            rows.append(dict(layer="L", units="1;2", intervention="zero", target=f"log_odds(style={style})",
                             effect=-0.3, ci_low=-0.4, ci_high=-0.2, n=16, k=2, baseline=base, style=style,
                             measure="log_odds", n_sets=1 if base == "top" else n_sets, direction="decrease",
                             p_random=pv if base == "top" else np.nan, q_random=qv if base == "top" else np.nan,
                             beyond_random=(qv <= 0.05) if base == "top" else np.nan,
                             random_low=-0.3, random_high=-0.1))
    return pd.DataFrame(rows)


def test_ablation_claim_prints_the_q_its_verdict_reads():
    """p_random at the 19-set floor (0.05) but q_random 0.2 after BH: 'not beyond random', and the
    reader sees q beside the p that alone would look like a pass."""
    df = _ablation_rows(19, p=[0.05, 0.5, 0.6, 0.7], q=[0.2, 0.7, 0.7, 0.7])
    c = ablation_claim(df)
    assert c.verdict == "not beyond random units" and not c.survives
    assert "p_random 0.0500" in c.baseline and "q_random 0.200" in c.baseline, c.baseline
    assert "BH over 4 selected-set rows" in c.baseline
    yes = ablation_claim(_ablation_rows(19, p=[0.05] * 4, q=[0.05] * 4))
    assert yes.survives and "q_random 0.0500" in yes.baseline and "in 4 of 4 styles" in yes.text


def test_ablation_summary_says_beat_every_set_only_with_19_sets():
    """With 99 sets p_random = 0.03 is <= 0.05 without beating every set (two beat it); the sentence
    used to say "beat every one of 99 sets"."""
    df = _ablation_rows(99, p=[0.03, 0.01, 0.5, 0.6], q=[0.06, 0.04, 0.6, 0.6])
    s = summary_sentence(df, summary_table(df), 99, "shuffled")
    assert "beat every" not in s and "2 of 4 style x target rows reach p_random &le; 0.05 against 99" in s, s
    assert "1 are beyond random" in s and "over all 4 selected-set rows" in s
    s19 = summary_sentence(_ablation_rows(19, p=[0.05] * 4, q=[0.05] * 4),
                           summary_table(_ablation_rows(19, p=[0.05] * 4, q=[0.05] * 4)), 19, "shuffled")
    assert "beat every one of 19 shuffled sets" in s19, s19


def test_directions_claim_prints_q_beside_p():
    from interp_gan.reporting.section_directions import claim
    df = pd.DataFrame({"method": ["pca", "pca", "svm", "random"], "index": [0, 1, 0, 0], "label": ["", "", "a->b", ""],
                       "space": "z", "style": "b", "effect": [3.0, 1.0, 0.5, 0.2], "ci_low": [2.0, 0.5, 0.1, 0.0],
                       "ci_high": [4.0, 1.5, 0.9, 0.4], "p_random": [0.05, 0.4, 0.5, 0.5],
                       "q_random": [0.15, 0.5, 0.5, np.nan], "n_random": 19, "random_p95": 2.5})
    c = claim(df)
    assert not c.survives and "p_random 0.0500" in c.baseline and "q_random 0.150" in c.baseline, c.baseline
    assert "BH over 3 discovered directions" in c.baseline


def test_interpolation_claim_does_not_say_every_random_walk_and_prints_q():
    """99 random walks: p_random 0.03 (three walks beat it), q 0.03, CI above 0: beyond random, but
    not "more than every random walk" (the old sentence)."""
    from interp_gan.reporting.section_interpolation import claim
    df = pd.DataFrame({"pair": ["a->b", "b->a"], "classifier": "classifier", "effect": [2.0, 0.1],
                       "ci_low": [1.0, -0.2], "ci_high": [3.0, 0.4], "p_random": [0.03, 0.6],
                       "q_random": [0.03, 0.6], "beyond_random": [True, False], "random_max": [2.5, 2.5]})
    c = claim(df)
    assert c.survives and "every" not in c.text, c.text
    assert "q_random 0.0300 (BH over 2 pairs)" in c.baseline, c.baseline


def test_style_edits_claim_prints_the_q_its_verdict_reads():
    from interp_gan.reporting.section_style_edits import claim
    rows = []
    for style, q in (("a", 0.3), ("b", 0.6)):
        for target in ("a", "b"):
            on = style == target
            rows.append(dict(layer="L", style=style, target_style=target, k=4, classifier="rgb", measure="log_odds",
                             on_target=on, effect=-1.0 if on else 0.0, ci_low=-1.5 if on else -0.1,
                             ci_high=-0.5 if on else 0.1, p_random=0.05 if on else np.nan,
                             q_random=q if on else np.nan, random_mean=-0.2, specificity=-1.0, spec_ci_low=-1.5,
                             spec_ci_high=-0.5, verdict="not beyond random" if on else "", n=8))
    c = claim(pd.DataFrame(rows))
    assert not c.survives and "p_random 0.0500, q_random 0.300 (BH over 2 removal rows)" in c.baseline, c.baseline


def test_a_number_beside_a_verdict_is_never_rounded_onto_its_threshold():
    """q = 0.04996 under "q < 0.05" printed "0.0500"; a sanity bound of 0.4996 under "passed: below
    0.5" printed "0.500" in the matrix (and "0.50" in the analysis' note)."""
    from interp_gan.reporting.numbers import sig, sig_beside
    assert sig(0.04996) == "0.0500" and sig_beside(0.04996, 0.05) == "0.04996"
    assert sig_beside(0.050004, 0.05) == "0.050004" and sig_beside(0.05, 0.05) == "0.0500"
    assert sig_beside(0.0123, 0.05) == "0.0123" and sig_beside(float("nan"), 0.05) == "–"
    assert sig_beside(0.49996, 0.5) == "0.49996" and sig_beside(-4.43e-05, 0.0) == "-4.43e-05"


def test_tables_keep_p_and_q_on_their_side_of_005():
    from interp_gan.reporting.render import table_html
    from interp_gan.reporting.sections import Table
    page = table_html(Table(pd.DataFrame({"q_value": [0.04996], "beyond": [True], "effect": [0.04996]})))
    assert "0.04996" in page and "0.0500" in page          # the q keeps its digits; an effect does not need them


def test_attribution_sanity_bounds_are_not_rounded_onto_the_threshold():
    from interp_gan.reporting.section_attribution import claims, sanity_matrix
    sanity = pd.DataFrame({"target": "classifier", "source": "real", "method": ["saliency", "ig"],
                           "randomized": "all", "step": 1, "spearman": [0.3, 0.7], "ci_low": [0.2, 0.50004],
                           "ci_high": [0.49996, 0.8], "threshold": 0.5, "verdict": ["passed", "failed"],
                           "passed": [True, False], "n_passed": [8, 0], "n_images": 8})
    m = sanity_matrix(sanity)
    assert "[0.200, 0.49996]" in m and "[0.50004, 0.800]" in m, m
    c = claims(sanity)
    assert c[0].ci == "[0.200, 0.49996]" and c[1].ci == "[0.50004, 0.800]", (c[0].ci, c[1].ci)


def test_empty_tables_give_no_rate_sentences():
    """No units dissected printed "0 of 0 labelled ... 0% labelled; difference 0 points [–, –]"; no
    finite q printed "– of unit x style tests [0%, 100%]"."""
    from interp_gan.reporting.section_dissection import claim as dissection_claim
    from interp_gan.reporting.section_style_units import claim as style_units_claim
    c = dissection_claim(pd.DataFrame({"layer": [], "unit": [], "labelled": []}),
                         pd.DataFrame({"layer": ["all"], "units": [0], "labelled_control": [0]}), 0.05)
    assert not c.survives and "0 of 0" not in c.text and "%" not in c.numbers(), (c.text, c.numbers())
    df = pd.DataFrame({"layer": "L", "unit": [0, 1], "style": "a", "q_value": np.nan, "auroc": np.nan})
    ctl = pd.DataFrame({"layer": ["L"], "units": [2], "tests": [0], "frac_q05_trained": [np.nan],
                        "frac_q05_control": [0.1], "tests_control": [8]})
    c = style_units_claim(df, ctl)
    text = c.text + c.numbers()
    assert not c.survives and "–" not in text and "[0%, 100%]" not in text, text


def test_paper_tables_keep_p_and_q_on_their_side_of_005():
    from interp_gan.reporting.exports import _cell
    assert _cell(0.04996, "q_random") == "0.04996" and _cell(0.04996, "effect") == "0.0500"


def test_style_units_rate_says_its_interval_counts_units_not_tests():
    """58.3% of 1280 unit x style tests printed [52.8%, 63.6%], an interval over 320 units (the demo): the
    denominator beside the percentage was not the interval's."""
    from interp_gan.reporting.section_style_units import claim
    df = pd.DataFrame({"layer": "L", "unit": np.tile(np.arange(10), 4), "style": np.repeat(list("abcd"), 10),
                       "q_value": [0.01] * 20 + [0.5] * 20})
    ctl = pd.DataFrame({"layer": ["L"], "units": [10], "tests": [40], "frac_q05_trained": [0.5],
                        "frac_q05_control": [0.1], "tests_control": [40]})
    c = claim(df, ctl)
    assert "of unit x style tests" in c.effect and "(interval over 10 units)" in c.ci, c.numbers()


def test_repair_claim_names_its_baseline_once():
    """No k qualifies: the Key findings line read "vs top 4 vs random 4-unit sets" (Claim.numbers
    prints "vs " before the baseline, and the baseline began with "top 4 vs")."""
    from interp_gan.findings.finding import Finding
    from interp_gan.reporting.section_artifacts import claim as artifact_claim
    ch = pd.DataFrame([dict(k=0, layer="dec.5", n_test=32, rule="the rule", reason="no k in 1..6 qualifies",
                            units="")])
    t = pd.DataFrame([dict(k=k, measure="d_logit", effect=0.1, ci_low=-0.1, ci_high=0.3, ci_low_simul=-0.2)
                      for k in range(1, 7)])
    rep = pd.DataFrame([dict(baseline="top", measure="d_logit", k=4, p_random=0.05)])
    c = artifact_claim(Finding("artifact_units", tables={"artifact_choice": ch, "artifact_tradeoff": t,
                                                         "artifact_repair": rep}))
    assert c.numbers().count("vs ") == 1, c.numbers()
    assert "random 4-unit sets" in c.numbers() and "p_random 0.05" in c.numbers()


def _directions_rows(p: list[float], q: list[float], n_random: int = 19) -> pd.DataFrame:
    rows = [dict(method="pca", index=i, style="a", effect=10.0 - i, ci_low=6.0, ci_high=12.0, random_p95=3.2,
                 p_random=pv, q_random=qv, n_random=n_random, space="style_code") for i, (pv, qv) in enumerate(zip(p, q))]
    rows += [dict(method="random", index=i, style="a", effect=1.0, ci_low=0.0, ci_high=2.0, random_p95=3.2,
                  p_random=0.5, q_random=np.nan, n_random=n_random, space="style_code") for i in range(n_random)]
    return pd.DataFrame(rows)


def test_directions_at_the_p_floor_are_not_said_to_move_less_than_random_ones():
    """The demo (2026-12-03): 7 of 9 directions beat all 19 random directions (p_random at its floor
    0.05), BH over 9 gave q 0.064, and the line said "none of 9 moves the style classifier more than
    19 random directions" beside "Δ log-odds 10.2 vs random 95th pct 3.23". Now it says they did, and
    that 19 random directions cannot resolve it; it still does not survive (q > 0.05)."""
    from interp_gan.reporting.section_directions import claim as directions_claim
    p = [0.05] * 7 + [0.3, 0.6]
    c = directions_claim(_directions_rows(p, q=[0.0643] * 7 + [0.35, 0.6]))
    assert not c.survives and c.verdict == "not beyond random directions"
    assert "none of" not in c.text and "7 of 9" in c.text and "more than all 19 random directions" in c.text
    assert "n_random" in c.text
    # no direction at the floor: the plain negative sentence stays
    c = directions_claim(_directions_rows([0.1, 0.4, 0.6], q=[0.3, 0.6, 0.6]))
    assert not c.survives and "none of 3 moves" in c.text
    # q passes: a positive claim
    c = directions_claim(_directions_rows([0.05, 0.05, 0.05], q=[0.05, 0.05, 0.05]))
    assert c.survives and c.text.startswith("3 of 3 discovered")


def test_ablation_rows_at_the_p_floor_are_not_said_to_move_no_more_than_random_sets():
    """Two styles' top sets beat all 19 random sets (p_random at the floor 0.05) but BH over 4 rows
    keeps q at 0.1: the line said "no more than 19 random 2-unit sets". Now: not resolved, 2 of 4
    beat them all, and the verdict stays negative."""
    from interp_gan.reporting.section_ablation import claim as ablation_claim
    c = ablation_claim(_ablation_rows(19, p=[0.05, 0.05, 0.6, 0.7], q=[0.1, 0.1, 0.7, 0.7]), "zero")
    assert not c.survives and c.verdict == "not beyond random units"
    assert "no more than" not in c.text and "in 2 of 4 styles" in c.text and "more than all 19 random" in c.text
    c = ablation_claim(_ablation_rows(19, p=[0.2, 0.3, 0.6, 0.7], q=[0.5, 0.5, 0.7, 0.7]), "zero")
    assert not c.survives and "no more than 19 random 2-unit sets" in c.text


def test_walks_above_every_random_walk_are_not_said_to_raise_no_more_than_them():
    """Three pairs' walks each above their largest random walk (p_random at the floor), BH over the
    3 pairs at q 0.075 (e.g. two at the floor, one not): the line said "No walk ... raises the target
    more than random walks"."""
    from interp_gan.reporting.section_interpolation import claim as walk_claim
    d = pd.DataFrame([dict(pair=f"a->{t}", classifier="classifier", effect=e, ci_low=e - 1, ci_high=e + 1,
                           random_max=rm, p_random=p, q_random=q, beyond_random=False)
                      for t, e, rm, p, q in [("b", 9.0, 3.0, 0.05, 0.075), ("c", 8.0, 3.0, 0.05, 0.075),
                                             ("d", 2.0, 3.0, 0.3, 0.3)]])
    c = walk_claim(d)
    assert not c.survives and "No walk" not in c.text and "2 of 3 walks" in c.text and "every random walk" in c.text
    c = walk_claim(d.assign(effect=[2.0, 1.0, 0.5]))
    assert not c.survives and c.text.startswith("No walk")


def test_directions_claims_read_each_rows_own_count_of_random_directions():
    """Sequential baselines: each row's floor is 1/(1 + n_random_used). The demo's unresolved case
    names n_random_max as the way to tell (199 lets one of 9 directions at its floor pass BH alone);
    a direction that beat all 199 of its random directions but sits among 20 is still unresolved and
    the line says so with 199, not 19; a resolved one says beyond, and the floor it prints is its own."""
    from interp_gan.reporting.section_directions import claim as directions_claim
    c = directions_claim(_directions_rows([0.05] * 7 + [0.3, 0.6], q=[0.0643] * 7 + [0.35, 0.6]))
    assert not c.survives and "set n_random_max = 199" in c.text and "only the directions that beat" in c.text
    # sequential: one direction at 1/200 after 199 draws among 20 (q = 0.1), the rest stopped early
    p = [1 / 200] + [0.5] * 19
    df = _directions_rows(p, q=[0.1] + [0.6] * 19).assign(n_random_used=[199] + [20] * 19 + [18] * 19)
    c = directions_claim(df)
    assert not c.survives and c.verdict == "not beyond random directions"
    assert "1 of 20" in c.text and "more than all 199 random directions" in c.text and "1/200" in c.text
    assert "raise n_random_max = 499" in c.text, c.text
    # the same direction passing BH (q 0.01): beyond random, its own floor printed beside it
    df = _directions_rows([1 / 200, 0.5], q=[0.01, 0.5]).assign(n_random_used=[199, 20] + [18] * 19)
    c = directions_claim(df)
    assert c.survives and "(20 to 199 per direction, sequential)" in c.text
    assert "floor 0.00500" in c.baseline, c.baseline
    # a row whose sequential p is large (it stopped after 40 draws) is not at any floor
    df = _directions_rows([10 / 40, 0.5], q=[0.5, 0.5]).assign(n_random_used=[40, 19] + [18] * 19)
    c = directions_claim(df)
    assert not c.survives and c.text.startswith("No evidence") and "none of 2" in c.text


def test_interpolation_claims_read_each_rows_own_count_of_random_walks():
    from interp_gan.reporting.section_interpolation import claim as walk_claim
    rows = [dict(pair=f"p{i}", classifier="classifier", effect=9.0 - i, ci_low=1.0, ci_high=10.0, random_max=3.0,
                 p_random=1 / 200 if i == 0 else 0.5, q_random=0.125 if i == 0 else 0.6, beyond_random=False,
                 n_random=19, n_random_used=199 if i == 0 else 20) for i in range(25)]
    c = walk_claim(pd.DataFrame(rows))
    assert not c.survives and "1 of 25 walks" in c.text and "(199 of them)" in c.text
    assert "raise n_random_max = 499" in c.text
    assert "(199 random walks)" in c.baseline and "of the first 19" in c.baseline
    # above random_max of the first 19 but matched later (p 10/60): not "more than every random walk"
    rows[0].update(p_random=10 / 60, q_random=0.6, n_random_used=60)
    c = walk_claim(pd.DataFrame(rows))
    assert c.text.startswith("No walk"), c.text


def _ablation_finding(df: pd.DataFrame):
    from interp_gan.findings import Finding
    from interp_gan.findings.stats import floor_note
    top = df["baseline"] == "top"
    used = df.loc[top, "n_random_used"].to_numpy(float) if "n_random_used" in df else 19
    # the analysis's own note: it counts every row at its floor, passing BH or not
    note = floor_note(df.loc[top, "p_random"].to_numpy(float), used, what="selected-set p_random values",
                      param="n_random", min_share=0.05)
    assert note
    return Finding("ablation", params={"intervention": "zero"}, tables={"ablation": df}, notes=[note])


def _section_text(finding) -> str:
    from interp_gan.reporting.section_ablation import ablation_section
    from interp_gan.reporting.sections import ReportContext
    return " ".join(b for b in ablation_section(finding, ReportContext()).blocks if isinstance(b, str))


def test_ablation_floor_note_only_where_the_floor_keeps_a_row_from_passing():
    """Every row at the 19-set floor: with q_random 0.05 they pass BH and no note asks for more sets;
    with q_random 0.2 the floor decides them and the note says so, with what to run."""
    passing = _section_text(_ablation_finding(_ablation_rows(19, p=[0.05] * 4, q=[0.05] * 4)))
    assert "sit at" not in passing and "the number of sets, not the data" not in passing, passing
    held = _section_text(_ablation_finding(_ablation_rows(19, p=[0.05, 0.05, 0.5, 0.6], q=[0.2, 0.2, 0.6, 0.6])))
    assert "2 of 4 selected-set rows beat every one of the 19 baseline sets" in held, held
    assert "set n_random_max = 99" in held


def test_ablation_claim_reads_each_rows_own_count_of_sets_once():
    """Sequential sets: the first 19 for every row, up to 99 for rows that beat them. A row at 1/100
    after 99 sets that BH keeps at q 0.2 is held by its own floor (1/100, not the first block's 1/20);
    a row at p = 0.05 after 99 sets is not at its floor."""
    from interp_gan.reporting.section_ablation import floor_binds, set_counts
    df = _ablation_rows(19, p=[0.01, 0.05, 0.5, 0.6], q=[0.2, 0.2, 0.6, 0.6])
    df["n_random_used"] = np.where(df["baseline"] == "top", [99, 99, 99, 99, 19, 19, 20, 20], np.nan)
    n_first, used = set_counts(df)
    assert n_first == 19 and list(used[df["baseline"] == "top"]) == [99, 99, 19, 20]
    assert list(floor_binds(df)) == [True] + [False] * 7
    c = ablation_claim(df)
    assert not c.survives and "in 1 of 4 styles" in c.text and "1/100 = 0.0100 with 99 sets" in c.text, c.text
    assert "raise n_random_max" in c.text
    s = summary_sentence(df, summary_table(df), n_first, "shuffled", used=used)
    assert "19 to 99 shuffled sets per row (sequential" in s, s
