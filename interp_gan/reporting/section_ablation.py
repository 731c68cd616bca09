"""Report section for ``Ablation`` findings: effect-vs-k curves against random unit sets.

    section = ablation_section(finding, ReportContext())      # registered for "ablation"
    fig = ablation_curves(finding.tables["ablation"], layer="blocks.3", measure="classifier")

Reads only the Finding's ``ablation`` table; never runs a model.
"""
from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp_gan.reporting.baselines import at_own_floor, baseline_counts, count_words, more_baselines_hint
from interp_gan.reporting.claims import Claim, result_line
from interp_gan.reporting.numbers import ci as fmt_ci, sig, sig_beside
from interp_gan.reporting.many_styles import shown_note, shown_styles
from interp_gan.reporting.sections import (FOLD_CLOSE, ReportContext, Section, Table, fold_open, how_to_read,
                                           register_section)

__all__ = ["ablation_section", "ablation_curves", "summary_table", "summary_sentence", "claim", "set_counts",
           "floor_binds"]

MEASURES = {"log_odds": "change in log-odds of the target style, RGB classifier",
            "log_odds_texture": "change in log-odds of the target style, texture classifier",
            "gram": "change in Gram distance to the style"}
# the summary table also lists the probabilities themselves
SUMMARY_MEASURES = ["classifier", "log_odds", "texture_classifier", "log_odds_texture", "gram"]
COLORS = {"top": "#c0392b", "random": "#7f8c8d"}

HOW_TO_READ = (
    "<p><b>How to read this.</b> For each target style the units of a layer are ranked by how "
    "selective they are for the style (AUROC), and the top k are {verb} together (k = 1, 2, 4, "
    "...). The units are ranked on one half of the images and measured on the other, and the "
    "other way round (cross-fitting), so no image is measured with units chosen on it. Each image "
    "is generated with and without the edit from the same content, noise and random state; the "
    "effect is the mean of the paired differences, with a 95% studentized bootstrap CI over images (red "
    "band). The grey curve is the mean effect of baseline unit sets of the same size, and its band "
    "the 2.5-97.5% range of the baseline sets' effects (the spread between sets, not a CI). The "
    "baseline sets (column baseline_sets) are 'shuffled' by default: the top k units of the same "
    "ranking for randomly permuted style labels, as coherent a group as the selected set but chosen "
    "for no style ('random': k units drawn uniformly; called random sets below). "
    "'Beyond random' is a one-sided test: p_random = (1 + number of random sets with an effect "
    "at least as large, in the expected direction) / (number of random sets + 1); with 19 random "
    "sets it cannot go below 0.05 (p_random = 0.05: the selected set beat every random set). "
    "With sequential sets (n_random_max) a row that beats the first sets is ranked among more, one at a "
    "time, until enough reach it or n_random_max were drawn; n_random_used gives each row's own count "
    "and its floor 1/(1 + that count). "
    "q_random is its Benjamini-Hochberg q over all selected-set rows (every k, measure and concept "
    "fraction), and 'beyond random' means q_random &le; 0.05: "
    "with many rows, a few at p_random = 0.05 are expected by chance alone. "
    "A selected set that does less than random is never 'beyond random'. It does not rule out "
    "that selective units are simply larger or more active units than a random set. "
    "The k at which the red curve flattens says "
    "how many units carry the style. The curves show the classifiers' log-odds log p/(1-p) of "
    "the style rather than p: a classifier that is confident on the generated images (p = 0.9999) "
    "hides an edit in p, not in the log-odds (p itself is in the table). For p(style) and its "
    "log-odds a drop (negative) means the style was removed; "
    "for the Gram distance a rise means the image moved away from the style's texture statistics. "
    "Zero/mean ablation is measured on images generated toward the style; insertion on images "
    "generated toward the other styles (then a rise in p means the units add the style). "
    "Random-ablation baselines follow Morcos et al. (ICLR 2018); unit ablation and insertion in "
    "generators follow Bau et al. (ICLR 2019, PNAS 2020).</p>")

_VERB = {"zero": "set to zero", "mean": "set to their mean", "insert": "forced to a high value (inserted)"}


def _band(fig, d: pd.DataFrame, color: str, name: str, row: int, col: int, legend: bool) -> None:
    d = d.sort_values("k")
    spread = "random_low" in d.columns and (d["baseline"] == "random").all() and d["random_low"].notna().all()
    lo_col, hi_col = ("random_low", "random_high") if spread else ("ci_low", "ci_high")
    k, lo, hi = d["k"].tolist(), d[lo_col].tolist(), d[hi_col].tolist()
    if len(k) > 1:
        fig.add_trace(go.Scatter(x=k + k[::-1], y=hi + lo[::-1], mode="lines", fill="toself", fillcolor=color,
                                 opacity=0.2, line={"width": 0}, hoverinfo="skip", showlegend=False,
                                 legendgroup=name),
                      row=row, col=col)
    err = None if len(k) > 1 else {"type": "data", "symmetric": False, "array": [hi[0] - d["effect"].iloc[0]],
                                   "arrayminus": [d["effect"].iloc[0] - lo[0]]}
    fig.add_trace(go.Scatter(x=k, y=d["effect"], mode="lines+markers", name=name, legendgroup=name,
                             showlegend=legend, line={"color": color}, error_y=err,
                             customdata=d[["units", "n"]].to_numpy(),
                             hovertemplate="k=%{x}<br>effect %{y:.3g}<br>units %{customdata[0]}"
                                           "<br>n=%{customdata[1]}<extra></extra>"), row=row, col=col)


def set_words(df: pd.DataFrame, k: int | str = "k") -> str:
    """What the baseline sets are, in words: "random 32-unit sets" for uniformly drawn ones, "shuffled-label
    32-unit sets" for the default (the top k units of the same ranking for permuted style labels), from
    the ``baseline_sets`` column (a finding without it: random). The claim said "random" for both."""
    kinds = sorted(set(df["baseline_sets"].dropna().astype(str)) - {""}) if "baseline_sets" in df else []
    size = f"{k}-unit" if k != "k" else "k-unit"
    if kinds in ([], ["random"]):
        return f"random {size} sets"
    if kinds == ["shuffled"]:
        return f"shuffled-label {size} sets"
    return f"baseline {size} sets ({'/'.join(kinds)})"


def ablation_curves(df: pd.DataFrame, layer: str, measure: str, ncols: int = 4) -> go.Figure:
    """One panel per target style (more than ``MAX_STYLES_SHOWN``: an even sample, said in the title):
    effect vs k for the top units (red) and random units (grey)."""
    d = df[(df["layer"] == layer) & (df["measure"] == measure)]
    every = list(dict.fromkeys(d["style"]))
    styles = [every[i] for i in shown_styles(len(every))]   # many target styles: an even sample of panels
    ncols = max(1, min(ncols, len(styles)))
    nrows = math.ceil(len(styles) / ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[str(s) for s in styles], shared_xaxes=True)
    for i, style in enumerate(styles):
        r, c = i // ncols + 1, i % ncols + 1
        for baseline in ("top", "random"):
            part = d[(d["style"] == style) & (d["baseline"] == baseline)]
            if len(part):
                label = ("top-k selective units" if baseline == "top"
                         else f"{set_words(d)} (band: 2.5-97.5% of sets)")
                _band(fig, part, COLORS[baseline], label, r, c, legend=i == 0)
        fig.add_hline(y=0, line={"color": "black", "width": 1, "dash": "dot"}, row=r, col=c)
    ks = sorted(d["k"].unique().tolist())
    fig.update_xaxes(type="log", tickvals=ks, ticktext=[str(k) for k in ks], title_text="k (units, log scale)",
                     row=nrows)
    note = shown_note(len(styles), len(every), "every style's rows are in findings/ablation.csv")
    fig.update_layout(title=f"{layer}: {MEASURES.get(measure, measure)}" + (f"<br><sub>{note}</sub>" if note else ""),
                      height=160 + 240 * nrows,
                      legend={"orientation": "h", "x": 0, "y": 0.0, "yanchor": "bottom", "yref": "container"},
                      margin={"b": 110})
    return fig


def short_units(units: str, keep: int = 6) -> str:
    """"4;6;7;10;12;..." -> "4;6;7;10;12;14 … (+26)" so a table row stays one line (the CSV has all)."""
    parts = str(units).split(";")
    return units if len(parts) <= keep else ";".join(parts[:keep]) + f" … (+{len(parts) - keep})"


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per layer, style and target: the largest k's top-unit effect next to the random baseline's,
    with the one-sided rank p against the random sets; the verdict is q_random <= 0.05 (BH over the
    finding's selected-set rows)."""
    main = df[df["measure"].isin(SUMMARY_MEASURES)]
    kmax = main.groupby(["layer", "style"])["k"].transform("max")
    d = main[main["k"] == kmax]
    fmt = lambda r: f"{r.effect:+.3g} [{r.ci_low:+.3g}, {r.ci_high:+.3g}]"  # noqa: E731
    rows = []
    for (layer, style, target), g in d.groupby(["layer", "style", "target"], sort=False):
        top, rnd = g[g["baseline"] == "top"], g[g["baseline"] == "random"]
        if not len(top):
            continue
        t = top.iloc[0]
        r = rnd.iloc[0] if len(rnd) else None
        p = getattr(t, "p_random", float("nan"))
        has_p = r is not None and p == p
        rng = (f"[{r.random_low:+.3g}, {r.random_high:+.3g}]"
               if r is not None and getattr(r, "random_low", float("nan")) == r.random_low else "")
        rows.append({"layer": layer, "style": style, "target": target, "k": int(t.k), "units": short_units(t.units),
                     "expected": getattr(t, "direction", ""),
                     "top effect [95% CI]": fmt(t), "random effect [95% CI]": fmt(r) if r is not None else "",
                     "random sets 2.5-97.5%": rng,
                     "p_random": p if has_p else float("nan"),
                     "q_random": getattr(t, "q_random", float("nan")) if has_p else float("nan"),
                     "beyond random (q_random <= 0.05)": bool(has_p and getattr(t, "q_random", p) <= 0.05),
                     "n": int(t.n)})
    return pd.DataFrame(rows)


def summary_sentence(df: pd.DataFrame, summ: pd.DataFrame, n_rand: int, kind: str,
                     used: np.ndarray | None = None) -> str:
    """How many of the summary table's rows reach p_random <= 0.05 and how many are beyond random
    after BH. "Beat every baseline set" is what p_random = 0.05 means only with 19 sets; the count
    is of the rows that have a baseline; the BH family (every selected-set row of the finding: all
    set sizes, measures and concept fractions) is named with its size. ``used``: each row's own
    count of sets (``set_counts``); when they differ (sequential sets) the sentence gives the range."""
    tested = summ[summ["p_random"].notna()]
    n_p = int((tested["p_random"] <= 0.05).sum())
    n_yes = int(tested["beyond random (q_random <= 0.05)"].sum())
    m = int(((df["baseline"] == "top") & df["p_random"].notna()).sum())
    floor = f"{sig(1 / (n_rand + 1))}" if n_rand else "–"
    top_used = np.asarray(used, float)[(df["baseline"] == "top").to_numpy() & df["p_random"].notna().to_numpy()] \
        if used is not None else np.zeros(0)
    varies = len(top_used) and " to " in count_words(top_used)
    if varies:
        lo, hi = int(np.nanmin(top_used)), int(np.nanmax(top_used))
        beat = (f"reach p_random &le; 0.05 against {lo} to {hi} {kind} sets per row (sequential: floors "
                f"{sig(1 / (hi + 1))} to {sig(1 / (lo + 1))})")
    elif n_rand == 19:
        beat = f"beat every one of {n_rand} {kind} sets (p_random = {floor} &le; 0.05, the floor)"
    else:
        beat = f"reach p_random &le; 0.05 against {n_rand} {kind} sets (floor {floor})"
    untested = len(summ) - len(tested)
    rest = f" ({untested} more have no baseline sets)" if untested else ""
    return (f"<p>At the largest k, {n_p} of {len(tested)} style x target rows{rest} {beat}; under no effect "
            f"about {sig(0.05 * len(tested))} would by chance. {n_yes} are beyond random after the "
            f"Benjamini-Hochberg correction over all {m} selected-set rows of the finding (every k, measure "
            f"and concept fraction; q_random &le; 0.05).</p>")


def set_counts(df: pd.DataFrame) -> tuple[int, np.ndarray]:
    """(n_random: the baseline sets every selected set was ranked among, from the baseline rows' n_sets;
    each row's own count of sets its p_random read: n_random_used, n_random for a finding from before
    it). Read once here: the claim, the summary and the floor note all use these."""
    rnd = df["baseline"] == "random"
    n_first = int(df.loc[rnd, "n_sets"].max()) if rnd.any() and "n_sets" in df and df.loc[rnd, "n_sets"].notna().any() \
        else 0
    return n_first, baseline_counts(df, n_first or None)


def floor_binds(df: pd.DataFrame) -> np.ndarray:
    """Selected-set rows whose p_random sits at their own floor 1 / (1 + sets read) -- they beat every
    baseline set -- and whose q_random (BH over the selected-set rows) is still above 0.05: the rows
    the floor keeps from passing. A row at its floor that passes BH needs no more sets."""
    if "p_random" not in df:
        return np.zeros(len(df), bool)
    _, used = set_counts(df)
    top = (df["baseline"] == "top").to_numpy()
    q = pd.to_numeric(df["q_random"], errors="coerce").to_numpy(float) if "q_random" in df else np.full(len(df), np.nan)
    with np.errstate(invalid="ignore"):
        passes = q <= ALPHA
    return top & at_own_floor(df["p_random"], used) & ~passes


def floor_binds_note(df: pd.DataFrame) -> str | None:
    """The note for ``floor_binds`` rows, with what to run; None when the floor keeps no row from passing."""
    hit = floor_binds(df)
    if not hit.any():
        return None
    n_first, used = set_counts(df)
    m = int(((df["baseline"] == "top") & df["p_random"].notna()).sum())
    at = used[hit]
    n_hi = int(np.nanmax(at))
    return (f"{int(hit.sum())} of {m} selected-set rows beat every one of the {count_words(at)} baseline sets they "
            f"were ranked among (p_random at its floor, down to 1/{n_hi + 1} = {sig(1 / (n_hi + 1))}), yet BH over "
            f"{m} rows keeps their q_random above {ALPHA}: the number of sets, not the data, decides them; "
            f"{more_baselines_hint(m, at, n_first, 'selected sets')}")


ALPHA = 0.05

_CLAIM_VERB = {"zero": ("Zeroing", "lowers"), "mean": ("Setting to their mean", "lowers"),
               "insert": ("Inserting", "raises")}


def claim(df: pd.DataFrame, intervention: str = "zero") -> Claim | None:
    """At the largest k, in the classifier's log-odds of the style: in how many styles does the
    selected set beat the random sets? It survives when at least one style's q_random (BH over all
    selected-set rows) is at most 0.05 (p_random when the finding has no q)."""
    measure = next((m for m in ("log_odds", "classifier", "log_odds_texture", "gram") if (df["measure"] == m).any()),
                   None)
    if measure is None:
        return None
    d = df[df["measure"] == measure]
    if "p_random" in d:   # a set of every unit of the layer has no random baseline: the largest k that has one
        tested = d[(d["baseline"] == "top") & d["p_random"].notna()]
        if len(tested):
            d = d[d["k"].isin(tested["k"].unique())]
    d = d[d["k"] == d.groupby(["layer", "style"])["k"].transform("max")]
    top, rnd = d[d["baseline"] == "top"], d[d["baseline"] == "random"]
    if not len(top):
        return None
    verb, moves = _CLAIM_VERB.get(intervention, ("Editing", "changes"))
    if "direction" in top and (top["direction"] == "increase").all():
        moves = "raises"
    k, layer = int(top["k"].max()), str(top["layer"].iloc[0])
    has_p = "p_random" in top and top["p_random"].notna().any()
    if not has_p:
        return Claim(f"{verb} the {k} most style-selective units of {layer} was not compared with random units",
                     effect="", verdict="no baseline", survives=False,
                     rule="an ablation effect without its random-unit baseline is not a finding")
    qcol = "q_random" if "q_random" in top and top["q_random"].notna().any() else "p_random"
    ok = top[top[qcol] <= 0.05]
    # the sets each row was ranked among, read once (sequential sets: each row its own count)
    n_first, used_all = set_counts(df)
    used = pd.Series(used_all, index=df.index).loc[top.index].to_numpy(float)
    # rows that beat every random set (p_random at its own floor) but that BH over the family cannot pass
    binds = pd.Series(floor_binds(df), index=df.index).loc[top.index].to_numpy(bool)
    at_floor = top[binds] if qcol == "q_random" and not len(ok) else top.iloc[:0]
    sign = -1 if moves == "lowers" else 1
    best = (ok if len(ok) else at_floor if len(at_floor) else top).sort_values("effect", ascending=sign < 0).iloc[0]
    r = rnd[(rnd["style"] == best["style"]) & (rnd["layer"] == best["layer"])]
    sets = set_words(df, k)                    # "shuffled-label 32-unit sets" by default, "random ..." if drawn so
    base = f"{sets} {sig(r['effect'].iloc[0])}" if len(r) else sets
    # the numbers the verdict reads, beside it: p_random alone at the floor would look "beyond random"
    # where BH over the family says otherwise
    m = int(((df["baseline"] == "top") & df["p_random"].notna()).sum())
    n_best = used[top.index.get_loc(best.name)] if best.name in top.index else float("nan")
    base += f"; p_random {sig_beside(best['p_random'], 0.05)}" + (
        f" ({int(n_best)} sets)" if np.isfinite(n_best) and " to " in count_words(used) else "") + (
        f", q_random {sig_beside(best['q_random'], 0.05)} (BH over {m} selected-set rows)" if qcol == "q_random" else "")
    layers = list(dict.fromkeys(top["layer"]))
    if len(layers) > 1:      # the rows are styles x layers: say so, and name every layer
        layer, unit = ", ".join(map(str, layers)), "style x layer rows"
    else:
        unit = "styles"
    said = count_words(used[np.isfinite(top["p_random"].to_numpy(float))]) if len(top) else "0"
    sets_word = said if " to " not in said else f"{said} (sequential)"
    what = {"log_odds": "log-odds of the style (RGB classifier)", "classifier": "probability of the style",
            "log_odds_texture": "log-odds of the style (texture classifier)",
            "gram": "Gram distance to the style"}[measure]
    if len(ok):
        text = (f"{verb} the {k} most style-selective units of {layer} {moves} the {what} more than "
                f"{sets} do (its rank among {sets_word}, BH q at most 0.05), in {len(ok)} of {len(top)} "
                f"{unit}")
    elif len(at_floor):
        n_at = used[binds]
        hi = int(np.nanmax(n_at))
        text = (f"Not resolved against random units: in {len(at_floor)} of {len(top)} {unit}, {verb.lower()} the "
                f"{k} most style-selective units of {layer} {moves} the {what} more than all {count_words(n_at)} "
                f"{sets}, but p_random cannot go below 1/{hi + 1} = {sig(1 / (hi + 1))} with {hi} "
                f"sets, and BH over {m} rows needs more; {more_baselines_hint(m, n_at, n_first, 'selected sets')}")
    else:
        text = (f"No evidence that the {k} most style-selective units of {layer} carry the style: {verb.lower()} "
                f"them {moves} the {what} no more than {sets_word} {sets} (0 of {len(top)} {unit} "
                f"beyond random)")
    return Claim(text, effect=f"{best['style']}: {sig(best['effect'])}", ci=fmt_ci(best["ci_low"], best["ci_high"]),
                 baseline=base, verdict="beyond random units" if len(ok) else "not beyond random units",
                 survives=bool(len(ok)),
                 rule=f"beyond random units when a style's {qcol} (one-sided rank among the random sets"
                      f"{', BH over all selected-set rows' if qcol == 'q_random' else ''}) is at most 0.05")


@register_section("ablation")
def ablation_section(finding, ctx: ReportContext) -> Section:
    title = "Causal ablation of style units"
    df = finding.tables["ablation"]
    intervention = str(finding.params.get("intervention", "zero"))
    verb = _VERB.get(intervention, "edited")
    c = claim(df, intervention) if len(df) else None
    blocks: list = [result_line(c) if c else "<p>No ablation was measured.</p>"]
    figures = {}
    curves = []
    for layer in dict.fromkeys(df["layer"]):
        for measure in MEASURES:
            if ((df["layer"] == layer) & (df["measure"] == measure)).any():
                fig = ablation_curves(df, layer, measure)
                curves.append(fig)
                figures[f"ablation_{measure}_{layer}"] = fig
    blocks += curves[:1]                                  # the classifier's log-odds first; the rest folded
    if len(df):
        summ = summary_table(df)
        n_rand, used = set_counts(df)
        kinds = sorted(set(df["baseline_sets"].dropna()) - {""}) if "baseline_sets" in df else []
        kind = "/".join(kinds) or "random"
        if len(summ) and "p_random" in summ:
            blocks.append(summary_sentence(df, summ, n_rand, kind, used=used))
        if len(curves) > 1:
            blocks += [fold_open(f"{len(curves) - 1} more measures: texture classifier, Gram distance"),
                       *curves[1:], FOLD_CLOSE]
        blocks.append(fold_open("Table: effect at the largest k, selected vs random units"))
        blocks.append(Table(summ, caption="Effect at the largest k: selected units vs random units (one-sided "
                                          "rank test among the random sets; the verdict is q_random, BH over all selected-set rows)"))
        blocks.append(FOLD_CLOSE)
        conc = df[(df["measure"] == "concepts") & (df["baseline"] == "top")]
        if "q_zero" in conc.columns:
            conc = conc[conc["q_zero"] < 0.05]
            cols = ["layer", "style", "k", "units", "target", "effect", "ci_low", "ci_high", "p_zero", "q_zero",
                    "p_random", "n"]
            caption = ("Concept pixel fractions that change (top units; sign-flip test of mean change = 0, "
                       "BH q < 0.05 over all selected-set rows)")
        else:   # a finding from before q-values were computed
            conc = conc[(conc["ci_low"] > 0) | (conc["ci_high"] < 0)]
            cols = ["layer", "style", "k", "units", "target", "effect", "ci_low", "ci_high", "n"]
            caption = "Concept pixel fractions that change (top units; CI excludes 0, no multiplicity correction)"
        if len(conc):
            conc = conc.reindex(conc["effect"].abs().sort_values(ascending=False).index)
            conc = conc.assign(units=conc["units"].map(short_units))
            blocks += [fold_open(f"Concept pixel fractions that change ({len(conc)} rows)"),
                       Table(conc[[c_ for c_ in cols if c_ in conc.columns]], caption=caption), FOLD_CLOSE]
        for n in finding.notes:
            # the analysis's own p_random floor note counts every row at its floor, also rows that pass BH:
            # the section says instead where the floor keeps a row from passing (floor_binds)
            if "selected-set p_random values" in n:
                continue
            if "floor" in n or "bootstrap replicates were not finite" in n or "bootstrap resamples had no spread" in n:
                blocks.append(f"<p><i>{html.escape(n)}</i></p>")
        binds = floor_binds_note(df)
        if binds:
            blocks.append(f"<p><i>{html.escape(binds)}</i></p>")
    blocks.append(how_to_read(HOW_TO_READ.format(verb=verb)))
    sec = Section(title, blocks, anchor="ablation", figures=figures)
    sec.claims = [c] if c else []
    return sec
