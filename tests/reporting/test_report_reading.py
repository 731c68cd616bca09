"""The report as a researcher reads it: what was analysed is said first, the Key findings box defines
its shorthand, a note is said once, a ratio's colour scale is white at chance, a log axis says so,
a table's numbers match the claim's, and the intervals a section states are cited."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from interp_gan.findings import Finding
from interp_gan.reporting import ReportContext, Section, register_section, write_report
from interp_gan.reporting.claims import Claim, key_findings_html, terms_html
from interp_gan.reporting.input_notes import analysed_line
from interp_gan.reporting.section_ablation import ablation_curves
from interp_gan.reporting.section_dissection import control_caption, control_table, dissection_section
from interp_gan.reporting.section_replication import agreement_claim, agreement_heatmap
from interp_gan.reporting.section_style_units import style_units_section

META = {"model": {"name": "stylenet"}, "checkpoint_path": "runs/x/checkpoint.safetensors", "step": 1200,
        "pipeline": {"n_images": 64, "image_size": 64, "data": "embedded"}, "checkpoint_sha256": "ab" * 32}


@register_section("_reading_notes")
def _notes_section(f, ctx):
    import html
    return Section("Notes demo", [f"<p><i>{html.escape(f.notes[0])}</i></p>"])   # prints its first note


def test_the_first_screen_says_what_was_analysed(tmp_path):
    """The header named a checkpoint hash and a data fingerprint only: not the model, the file, the
    training step, how many images at what size, or which styles."""
    line = analysed_line(META, ["lite01", "lite03"])
    assert line == ("Analysed: the stylenet generator in runs/x/checkpoint.safetensors (training step 1200), "
                    "on 64 images at 64x64 px from the embedded data set, toward 2 styles: lite01, lite03.")
    assert analysed_line({}) == ""
    assert analysed_line({"style_names": [f"s{i}" for i in range(10)]}).endswith("s7, ... (+2).")
    f = Finding("_reading_notes", notes=["a note"], tables={"t": pd.DataFrame({"x": [1]})})
    out = write_report(tmp_path / "rep", [f], ReportContext(name="r", meta=META, style_names=["lite01", "lite03"]),
                       paper=False)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.index("Analysed: the stylenet generator") < page.index('id="key-findings"')


def test_a_note_the_section_prints_is_not_repeated_below_it(tmp_path):
    """The agreement and ablation sections print some notes in their body; the footer listed them
    all again under "Notes from the analysis"."""
    f = Finding("_reading_notes", notes=["printed above & once", "only in the footer"],
                tables={"t": pd.DataFrame({"x": [1]})})
    out = write_report(tmp_path / "rep", [f], ReportContext(name="r"), paper=False)
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("printed above &amp; once") == 1
    assert page.count("only in the footer") == 1
    assert "Notes from the analysis (1; 1 more shown above)" in page


def test_key_findings_define_the_shorthand_they_use():
    """q, p_random, q_random, "random init", ci_low_simul were used on the first screen and defined only
    in folded method texts further down."""
    jargon = Claim("7 of 9 directions beyond random", effect="Δ log-odds 10.1", ci="[6.08, 12.6]",
                   baseline="p_random 0.0500, q_random 0.0500 (BH over 9)", verdict="beyond", survives=True)
    plain = Claim("Nothing of note", effect="3 units", verdict="none", survives=False)
    page = key_findings_html([[jargon], [plain]])
    terms = re.search(r'<p class="kf-rule kf-terms">(.*?)</p>', page).group(1)
    for term in ("<b>p_random</b>", "<b>q_random</b>", "<b>BH</b>", "<b>log-odds</b>"):
        assert term in terms, term
    assert "<b>q</b>" not in terms and "random init" not in terms     # only what the claims say
    assert terms_html([plain]) == ""


def _agreement() -> pd.DataFrame:
    rows = [("style_units", "directions", s, o) for s, o in (("a", 0), ("b", 1), ("c", 4))]
    return pd.DataFrame({"method_a": [r[0] for r in rows], "method_b": [r[1] for r in rows],
                         "style": [r[2] for r in rows], "layer": "L", "overlap": [r[3] for r in rows],
                         "expected_by_chance": 0.2, "p_value": [1.0, 0.2, 0.001], "q_value": [1.0, 0.3, 0.003],
                         "independent": True})


def test_the_agreement_colour_scale_is_white_at_chance():
    """overlap / chance is a ratio: with Viridis from 0, an overlap of 0 and one at chance (ratio 1)
    had the same dark colour. Now the colour is log2 of the ratio on a scale symmetric about 0
    (RdBu's white middle = chance), below chance blue, above red."""
    fig = agreement_heatmap(_agreement())          # ratios 0, 5, 20
    h = fig.data[0]
    z = np.asarray(h.z, float).ravel()
    assert h.zmin == -h.zmax and h.zmax >= np.log2(20) - 1e-9          # white (the middle) sits at log2(1) = 0
    assert z[0] < 0 < z[1] < z[2] and abs(z[2] - np.log2(20)) < 1e-9   # 0 overlap below chance, 20x above
    assert "1 = chance" in h.colorbar.ticktext and "log" in h.colorbar.title.text
    assert np.asarray(h.customdata, float)[0, 2, 0] == 20              # the hover keeps the ratio itself


def test_the_agreement_claim_states_its_chance_baseline_in_words():
    """It read "vs median overlap 0 vs 0.2 by chance"."""
    c = agreement_claim(_agreement())
    assert c.numbers().count(" vs ") == 1
    assert "chance: a median overlap of 0.200 units (observed median 1.00)" in c.baseline


def test_the_ablation_log_axis_says_it_is_log():
    ks = [1, 4, 16, 32]
    df = pd.DataFrame([{"layer": "L", "measure": "log_odds", "style": "a", "baseline": b, "k": k, "effect": -0.01 * k,
                        "ci_low": -0.02 * k, "ci_high": 0.0, "units": "1", "n": 8} for b in ("top", "random")
                       for k in ks])
    fig = ablation_curves(df, "L", "log_odds")
    logs = [ax for name, ax in fig.layout.to_plotly_json().items() if name.startswith("xaxis") and
            ax.get("type") == "log"]
    assert logs and all("log scale" in ax.get("title", {}).get("text", "log scale") for ax in logs)
    assert any("log scale" in ax.get("title", {}).get("text", "") for ax in logs)


def _control() -> tuple[pd.DataFrame, pd.DataFrame]:
    control = pd.DataFrame({"layer": ["L", "all"], "units": [352, 352], "labelled_trained": [21, 21],
                            "labelled_control": [11, 11], "frac_trained": [21 / 352] * 2,
                            "frac_control": [11 / 352] * 2, "tests_q05_trained": [0.1368] * 2,
                            "tests_q05_control": [0.2696] * 2})
    draws = pd.DataFrame({"layer": ["L", "all"] * 3, "draw": [0, 0, 1, 1, 2, 2], "seed": [0, 0, 1, 1, 2, 2],
                          "units": 352, "labelled": [11, 11, 3, 3, 1, 1]})
    draws["rate"] = draws["labelled"] / draws["units"]
    return control, draws


def test_the_dissection_control_table_reads_as_the_claim_and_names_its_draw():
    """The table rounded 21/352 to 6.0% before formatting it with three digits ("6.00") beside the
    claim's 5.97%, and its random-init column (the first draw, 3.13%) stood beside the claim's mean of
    three draws (1.42%) without saying so."""
    control, draws = _control()
    t = control_table(control)
    assert abs(t["% labelled trained"].iloc[-1] - 100 * 21 / 352) < 1e-12
    cap = control_caption(draws, "dissection")
    assert "first of 3 draws" in cap and "dissection_control_draws.csv" in cap
    assert "draws" not in control_caption(draws[draws["draw"] == 0], "dissection")


def test_sections_cite_the_intervals_they_state():
    """Style units states DeLong's AUROC interval (Newcombe's where groups separate) and both rate
    sections state Wilson's interval and the arcsine-scale prediction bound: none was in References."""
    su = pd.DataFrame({"layer": "L", "unit": [0, 1, 0, 1], "style": ["a", "a", "b", "b"],
                       "auroc": [0.9, 0.4, 0.1, 0.6], "ci_low": 0.0, "ci_high": 1.0, "p_value": 0.01,
                       "q_value": [0.01, 0.5, 0.01, 0.5], "cohens_d": 1.0})
    sec = style_units_section(Finding("style_units", tables={"style_units": su}), ReportContext())
    assert {"delong1988auc", "newcombe2006auc", "wilson1927interval"} <= set(sec.references)
    control, draws = _control()
    units = pd.DataFrame({"layer": "L", "unit": range(4), "concept": "red", "iou": 0.1, "ci_low": 0.05,
                          "ci_high": 0.2, "p_value": 0.01, "q_value": 0.02, "labelled": [1, 0, 0, 0],
                          "threshold": 0.5})
    f = Finding("dissection", tables={"dissection_units": units, "dissection_control": control,
                                      "dissection_control_draws": draws}, params={"alpha": 0.05})
    sec = dissection_section(f, ReportContext())
    assert {"wilson1927interval", "anscombe1948transformation"} <= set(sec.references)


def test_the_more_baselines_hint_is_a_whole_sentence():
    """It ended "... stays for the rest) to tell", which reads as a sentence cut short."""
    from interp_gan.reporting.baselines import more_baselines_hint
    hint = more_baselines_hint(9, np.array([19.0]), 19, "directions")
    assert hint.startswith("set n_random_max = ") and hint.endswith(") to resolve them"), hint


def test_paper_figures_label_every_kth_category_where_all_would_overlap():
    """The style-units heatmap's 60 rotated unit labels ran together in the 6.8 in paper figure (9 px
    apart for 11 px text); the print copy now labels every k-th, and a heatmap with few columns keeps all."""
    import plotly.graph_objects as go
    from interp_gan.reporting.exports import paper_figure
    from interp_gan.reporting.section_style_units import selectivity_heatmap
    rng = np.random.default_rng(0)
    df = pd.DataFrame([{"layer": "blocks.3.conv2", "unit": u, "style": s, "auroc": rng.random(), "q_value": 0.5,
                        "cohens_d": 1.0} for u in range(80) for s in ("a", "b")])
    fig, w, h = paper_figure(selectivity_heatmap(df, max_units=60), "wide")
    shown = list(fig.layout.xaxis.ticktext)
    assert 10 <= len(shown) < 60, len(shown)
    spacing = (w - fig.layout.margin.l - fig.layout.margin.r) / 60 * (60 / len(shown))
    assert spacing * np.sin(np.radians(60)) >= 1.15 * fig.layout.xaxis.tickfont.size     # no overlap
    assert set(shown) <= set(selectivity_heatmap(df, max_units=60).layout.xaxis.ticktext)
    few, _, _ = paper_figure(go.Figure(go.Heatmap(z=[[1, 2, 3]], x=["p", "q", "r"], y=["s"])), "narrow")
    assert few.layout.xaxis.tickvals is None          # three columns: plotly labels them all


def test_a_paper_bar_chart_of_many_bars_prints_full_width_with_its_axis_title_whole():
    """The directions' ten effect bars printed at one column: 15 px bars under 22 px baseline dashes
    that seemed to belong to their neighbours, every other bar unlabelled, and a y title longer than
    the plot cut at both ends."""
    from interp_gan.reporting.exports import PAPER_WIDTHS_IN, PX_PER_IN, paper_figure
    from interp_gan.reporting.section_directions import effect_bars
    n = 9
    df = pd.DataFrame({"method": ["pca"] * 3 + ["sefa"] * 3 + ["svm"] * 3 + ["random"] * 19,
                       "index": list(range(3)) * 3 + list(range(19)), "style": "a",
                       "effect": np.r_[np.linspace(2, 10, n), np.zeros(19)], "ci_low": 0.0, "ci_high": 12.0,
                       "ssim_min": 0.9, "p_random": 0.05, "q_random": 0.05, "random_p95": 3.0})
    fig, w, h = paper_figure(effect_bars(df))
    assert w == round(PAPER_WIDTHS_IN["wide"] * PX_PER_IN)
    assert "<br>" in fig.layout.yaxis.title.text          # "Δ log-odds of the style moved toward", two lines
    narrow, _, _ = paper_figure(effect_bars(df[df["method"].isin(["pca", "random"])]))
    assert narrow.layout.width == round(PAPER_WIDTHS_IN["narrow"] * PX_PER_IN)   # four bars: one column


def test_a_distance_is_never_drawn_among_the_0_1_scores():
    """The demo's feature Fréchet distance peaks at 1.05 and was drawn in "Evaluation (0–1 scores)"."""
    from interp_gan.reporting.section_overview import training_curves_figure
    rows = [("eval/acc_rgb", s, v) for s, v in ((300, 0.5), (600, 1.0))]
    rows += [("eval/feature_frechet", s, v) for s, v in ((300, 1.05), (600, 0.3))]
    rows += [("eval/lum_corr", s, v) for s, v in ((300, 0.6), (600, 0.7))]
    rows += [("loss_g", s, v) for s, v in ((300, 2.0), (600, 1.0))]
    fig = training_curves_figure(pd.DataFrame(rows, columns=["metric", "step", "value"]))
    titles = {a.text: a for a in fig.layout.annotations}
    assert {"Evaluation (0–1 scores)", "Evaluation (distances)"} <= set(titles)
    axis_of = {t.name: t.xaxis for t in fig.data}
    panel = {name: i + 1 for i, name in enumerate(t.text for t in fig.layout.annotations)}
    scores = "x" if panel["Evaluation (0–1 scores)"] == 1 else f"x{panel['Evaluation (0–1 scores)']}"
    assert axis_of["eval/acc_rgb"] == axis_of["eval/lum_corr"] == scores
    assert axis_of["eval/feature_frechet"] != scores


def test_the_unit_importance_axis_title_fits_beside_its_plot():
    """"importance (attribution summed over space)" (42 characters, about 290 px at 12 px) was cut at
    both ends beside the default 450 px figure's plot area of about 270 px."""
    from interp_gan.reporting.section_attribution import unit_bars
    units = pd.DataFrame({"method": "layer_conductance", "style": ["a", "a", "b"], "layer": "L",
                          "unit": [1, 2, 3], "rank": [1, 2, 1], "importance": [0.3, 0.2, 0.1]})
    title = unit_bars(units).layout.yaxis.title.text
    assert max(len(line) for line in title.split("<br>")) <= 30, title


def test_no_repair_states_the_effect_its_verdict_rests_on():
    """"✗ no k qualifies ... vs random 4-unit sets (the top 4's p_random 0.0500)": no effect, no interval,
    and a p_random at its floor beside a negative verdict. It now gives the k closest to qualifying,
    its change of D's logit with the simultaneous lower bound the rule reads, and both effects behind
    p_random (the top 4 harm realism less than every random set; that is not a gain)."""
    from interp_gan.reporting.section_artifacts import claim as artifact_claim
    ch = pd.DataFrame([dict(k=0, layer="dec.5", n_test=32, rule="the rule", reason="no k in 1..3 qualifies",
                            units="")])
    t = pd.DataFrame([dict(k=k, measure="d_logit", effect=e, ci_low=e - 0.01, ci_high=e + 0.01, ci_low_simul=s)
                      for k, e, s in ((1, -0.004, -0.014), (2, 0.001, -0.009), (3, -0.01, -0.03))])
    rep = pd.DataFrame([dict(baseline="top", measure="d_logit", k=2, effect=-0.027, p_random=0.05),
                        dict(baseline="random", measure="d_logit", k=2, effect=-0.222, p_random=np.nan)])
    c = artifact_claim(Finding("artifact_units", tables={"artifact_choice": ch, "artifact_tradeoff": t,
                                                         "artifact_repair": rep}))
    assert not c.survives
    assert c.effect == "D logit at k = 2: 0.00100" and "simultaneous lower bound -0.00900" in c.ci, c.numbers()
    assert "random 2-unit sets -0.222 (the top 2: -0.0270, p_random 0.0500)" in c.baseline


def test_the_ablation_claim_names_the_baseline_sets_it_was_ranked_among():
    """The default baseline sets are the top k units for shuffled style labels, yet the claim and the
    legend said "random 32-unit sets" (a citation would misname the control)."""
    from interp_gan.reporting.section_ablation import claim as ablation_claim, set_words
    rows = [dict(layer="L", style="a", measure="log_odds", k=4, baseline=b, effect=e, ci_low=e - 0.1,
                 ci_high=e + 0.1, p_random=p, q_random=p, n_sets=n, units="1;2;3;4", n=8, baseline_sets="shuffled")
            for b, e, p, n in (("top", -0.2, 0.7, 1), ("random", -0.25, np.nan, 19))]
    df = pd.DataFrame(rows)
    c = ablation_claim(df, "zero")
    assert "shuffled-label 4-unit sets" in c.text and "random 4-unit" not in c.text, c.text
    assert c.baseline.startswith("shuffled-label 4-unit sets -0.250")
    assert set_words(df.assign(baseline_sets="random"), 4) == "random 4-unit sets"
    assert set_words(df.drop(columns="baseline_sets"), 4) == "random 4-unit sets"     # older findings


@register_section("_reading_tables")
def _tables_section(f, ctx):
    from interp_gan.reporting import Table
    df = f.tables["units_rows"]
    return Section("Reading tables, the section's title", [
        Table(df, caption="Units and their held-out IoU"),
        Table(df.sort_values("iou")[["unit", "iou"]], caption="The same units by IoU")])


def test_paper_tables_carry_the_caption_and_title_the_report_gives_them(tmp_path):
    """paper/<table>.tex was captioned "<registered title>: <file name>" ("Channel dissection:
    dissection control", "Causal ablation: ablation"), neither what the table is nor the title the
    figures beside it use."""
    units = pd.DataFrame({"unit": [0, 1, 2], "iou": [0.3, 0.1, 0.2], "q_value": [0.01, 0.2, 0.5]})
    other = pd.DataFrame({"x": [1, 2]})
    f = Finding("_reading_tables", tables={"units_rows": units, "other_rows": other},
                section={"title": "Registered title"})
    out = write_report(tmp_path / "rep", [f], ReportContext(name="r"), static_figures=False)
    tex = (out / "paper" / "units_rows.tex").read_text()
    assert r"\caption{Reading tables, the section's title: Units and their held-out IoU}" in tex, tex
    assert r"\caption{Reading tables, the section's title: other rows}" in (out / "paper" / "other_rows.tex").read_text()


def test_the_style_units_control_table_states_percentages_as_its_claim_does():
    """The claim said "58.0% of unit x style tests" and the table beside it 0.568, 0.584, 0.594."""
    from interp_gan.reporting import Table
    su = pd.DataFrame({"layer": "L", "unit": [0, 1, 0, 1], "style": ["a", "a", "b", "b"],
                       "auroc": [0.9, 0.4, 0.1, 0.6], "ci_low": 0.0, "ci_high": 1.0, "p_value": 0.01,
                       "q_value": [0.01, 0.5, 0.01, 0.5], "cohens_d": 1.0})
    ctl = pd.DataFrame({"layer": ["L"], "units": [2], "tests": [4], "frac_q05_trained": [0.568],
                        "frac_q05_control": [0.434], "tests_control": [4]})
    sec = style_units_section(Finding("style_units", tables={"style_units": su, "style_units_control": ctl}),
                              ReportContext())
    shown = next(b.df for b in sec.blocks if isinstance(b, Table) and "Random-init control" in b.caption)
    assert abs(shown["% tests q<0.05 trained"].iloc[0] - 56.8) < 1e-9
    assert abs(shown["% tests q<0.05 random init"].iloc[0] - 43.4) < 1e-9
