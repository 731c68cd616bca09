"""Claims: the sentences the report leads with, generated from the Findings (never written by hand).

    c = Claim(text="...", effect="6.25%", ci="[4.17%, 9.29%]", baseline="random init 3.13%",
              verdict="beyond random init", survives=True)
    sec.claims = [c]                        # a section function returns its claims with its Section
    html = key_findings_html(claims)        # the first screen: findings, then what did not survive
    html = result_line(c)                   # the one-line result that opens the section

A claim states one effect with its interval and the verdict of its control or baseline (random
init, random unit sets, random directions, randomised models). ``survives`` is computed from the
numbers by the rule in ``rule``; a claim that does not survive is worded as a null result by the
function that makes it and is listed under "Checked, not found", never among the findings.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

from interp_gan.findings.stats import newcombe_difference, rate_beyond_draws, wilson_interval
from interp_gan.reporting.numbers import ci as fmt_ci, pct, sig, sig_beside

__all__ = ["Claim", "key_findings_html", "result_line", "rate_vs_control", "replicated_counts", "partial_control",
           "MAX_CLAIMS", "KEPT_PREFIX", "draws_of", "TERMS", "terms_html", "RATE_REFERENCES"]

MAX_CLAIMS = 6
# what a section that states a rate beside its random-init control (rate_vs_control) cites: Wilson's
# interval of the rate, Newcombe's interval of the difference, Anscombe's scale of the prediction bound
RATE_REFERENCES = ("wilson1927interval", "newcombe1998difference", "anscombe1948transformation")
# the note an analysis' Finding carries when its random-init control kept trained values (written by
# interp_gan.subject.control, which this module cannot import: rendering needs no torch)
KEPT_PREFIX = "random-init control keeps"


@dataclass
class Claim:
    text: str                 # the sentence (plain text; escaped on render)
    effect: str               # the number the sentence rests on, formatted
    ci: str = ""              # its 95% interval, formatted ("" when it has none)
    baseline: str = ""        # what it was compared with, formatted
    verdict: str = ""         # the control's verdict in words ("beyond random init", "not beyond ...")
    survives: bool = False    # the verdict, as computed by ``rule``
    rule: str = ""            # how ``survives`` was decided (shown on hover and in the caption)
    anchor: str = ""          # the section holding the evidence (set by the report)
    priority: int = 0         # lower first within a section
    analysis: str = ""        # the analysis whose Finding it comes from (set by the report)
    replication: str = ""     # "k of n replicate" where a replication Finding exists (set by the report)

    def numbers(self) -> str:
        parts = [self.effect + (f" {self.ci}" if self.ci else "")]
        if self.baseline:
            parts.append(f"vs {self.baseline}")
        if self.replication:
            parts.append(self.replication)
        return " · ".join(p for p in parts if p.strip())


def rate_vs_control(k: int, n: int, k_ctl: int, n_ctl: int, draws: list[tuple[float, float]] | None = None) -> dict:
    """A trained rate next to its random-init control's: the rate's Wilson interval, the difference
    with Newcombe's interval, and the verdict.

    With ``draws`` (K >= 2 control draws, [(k_i, n_i)]): ``survives`` = the trained rate lies above
    the random networks' one-sided 97.5% prediction bound (``findings.stats.rate_beyond_draws``),
    which counts how much the rate varies between networks. With one draw: the difference's Newcombe
    interval lies above 0, which treats units as independent and cannot see that spread, so its
    verdict is worded "above its one control draw", not "beyond random init"."""
    lo, hi = wilson_interval(k, n)
    d_lo, d_hi = newcombe_difference(k, n, k_ctl, n_ctl)
    rate, ctl = k / max(n, 1), k_ctl / max(n_ctl, 1)
    out = {"rate": rate, "ci": fmt_ci(lo, hi, pct), "control": ctl, "diff": rate - ctl,
           "diff_ci": f"[{sig(100 * d_lo)}, {sig(100 * d_hi)}] points"}
    if draws is not None and len(draws) >= 2:
        b = rate_beyond_draws(k, n, list(draws))
        return {**out, "survives": b["survives"], "control": b["mean"], "draws": b,
                "baseline": (f"random init {pct(b['mean'])} ({b['k']} draws: {pct(b['low'])} to {pct(b['high'])}; "
                             f"a random network's rate <= {pct(b['bound'])} at 97.5%, p {sig_beside(b['p'], 0.025)})"),
                "verdict": "beyond random init" if b["survives"] else "not beyond random init",
                "rule": (f"beyond random init when the trained rate lies above the one-sided 97.5% prediction bound "
                         f"of {b['k']} random-init draws (t on Anscombe's arcsine scale, K - 1 df, sd floored at the "
                         "binomial sd): the trained network read as one more random network, p < 0.025 "
                         "(docs/statistics.md)")}
    return {**out, "survives": bool(d_lo > 0),
            "baseline": f"random init {pct(ctl)} (one draw); difference {sig(100 * (rate - ctl))} {out['diff_ci']}",
            "verdict": "above its one control draw" if d_lo > 0 else "not above its control draw",
            "rule": "above its one control draw when the 95% interval of the difference of the two rates (Newcombe's "
                    "method 10, treating units as independent) lies above 0; one draw does not show how much the "
                    "rate varies between networks, so this is not 'beyond random init' (on a planted null of "
                    "networks it says 'above' 0.5-23% of the time with style units' exact p-values, 9-31% with 199 "
                    "Monte Carlo shuffles, not 2.5%; run control_draws >= 3, "
                    "docs/statistics.md)"}


def draws_of(table, count: str = "count", total: str = "units") -> list[tuple[float, float]] | None:
    """[(count, total)] of each control draw's "all" row in a ``*_control_draws`` table (None without one)."""
    if table is None or not len(table) or "draw" not in table.columns:
        return None
    t = table[table["layer"] == "all"].sort_values("draw")
    return [(float(r[count]), float(r[total])) for _, r in t.iterrows()] or None


def partial_control(c: Claim | None, notes: list[str]) -> str:
    """The sentence printed beside a random-init comparison when the control kept trained values
    ("" when it kept none); the claim's baseline then says so too, so the Key findings box does."""
    kept = next((n for n in notes if n.startswith(KEPT_PREFIX)), None)
    if kept is None:
        return ""
    if c is not None and c.baseline and "partly trained" not in c.baseline:
        c.baseline += "; the control is partly trained"
    return f"<p><i>The {html.escape(kept)}.</i></p>"


def _badge(c: Claim) -> str:
    cls, mark = ("ok", "✓") if c.survives else ("no", "✗")
    return (f'<span class="verdict {cls}" title="{html.escape(c.rule)}">{mark} '
            f"{html.escape(c.verdict)}</span>")


def replicated_counts(finding) -> dict[str, tuple[int, int]]:
    """{analysis: (findings that replicate, findings)} from a ``replication`` Finding ({} without one)."""
    s = None if finding is None or finding.skipped else finding.tables.get("replication_summary")
    if s is None:
        return {}
    return {str(a): (int(g["replicates"].astype(bool).sum()), len(g)) for a, g in s.groupby("analysis")}


def _claim_li(c: Claim, cls: str = "") -> str:
    link = f' <a class="evidence" href="#{html.escape(c.anchor)}">evidence&nbsp;→</a>' if c.anchor else ""
    return (f'<li class="claim {cls or ("ok" if c.survives else "no")}">{_badge(c)} {html.escape(c.text)}'
            f' <span class="nums">{html.escape(c.numbers())}</span>{link}</li>')


def result_line(c: Claim | None, fallback: str = "") -> str:
    """The section's opening line: its main claim with the verdict badge (or ``fallback`` HTML)."""
    if c is None:
        return f'<p class="result">{fallback}</p>' if fallback else ""
    return (f'<p class="result">{_badge(c)} <b>{html.escape(c.text)}</b> '
            f'<span class="nums">{html.escape(c.numbers())}</span></p>')


def select(claims_by_section: list[list[Claim]], limit: int = MAX_CLAIMS) -> list[Claim]:
    """The first claim of every section (in report order), then further ones while there is room."""
    firsts = [sorted(cs, key=lambda c: c.priority)[0] for cs in claims_by_section if cs]
    rest = [c for cs in claims_by_section for c in sorted(cs, key=lambda c: c.priority)[1:]]
    return (firsts + rest)[:limit]


# The shorthand the claims' sentences and numbers use, defined where it appears (the Key findings box is
# read before any section's "How to read this"): (pattern in a claim's text or numbers, term, meaning).
TERMS: list[tuple[str, str, str]] = [
    (r"\bq(?: [<=]| \d|_value)", "q",
     "Benjamini-Hochberg q-value, p adjusted for the many tests made together (q < 0.05 keeps the expected "
     "share of false discoveries under 5%)"),
    (r"\bBH\b", "BH", "Benjamini-Hochberg correction"),
    (r"\bp_random\b", "p_random",
     "share of the random baselines (unit sets, directions) doing at least as well, the selected one counted; "
     "its floor is 1/(n + 1) with n baselines"),
    (r"\bq_random\b", "q_random", "p_random after BH"),
    (r"random[- ]init", "random init", "the same architecture, freshly initialised, analysed the same way (the "
     "control)"),
    (r"at 97\.5%", "rate <= x at 97.5%",
     "one-sided 97.5% prediction bound of the random-init draws' rates; p: the trained rate as one more random "
     "network"),
    (r"\bci_low_simul\b", "ci_low_simul", "lower end of a simultaneous 95% interval (Bonferroni over the k scanned)"),
    (r"\b(?:sefa|pca|svm) \d", "sefa / pca / svm",
     "direction methods: SeFa, PCA of the style codes, a linear SVM between two styles"),
    (r"log-odds", "log-odds", "log(p / (1 - p)) of the classifier's probability of the target style"),
]


def terms_html(claims: list[Claim]) -> str:
    """One line defining each shorthand in ``TERMS`` that the claims use ("" when they use none)."""
    said = " ".join(f"{c.text} {c.numbers()}" for c in claims)
    used = [(term, meaning) for pattern, term, meaning in TERMS if re.search(pattern, said)]
    if not used:
        return ""
    return ('<p class="kf-rule kf-terms">Terms: '
            + "; ".join(f"<b>{html.escape(t)}</b>: {html.escape(m)}" for t, m in used) + ".</p>")


def key_findings_html(claims_by_section: list[list[Claim]], teaser: str = "", limit: int = MAX_CLAIMS,
                      replication: dict[str, tuple[int, int]] | None = None) -> str:
    """The "Key findings" box: claims that survive their control, then those that did not.

    ``replication`` ({analysis: (replicated, findings)}, ``replicated_counts``): where a replication
    Finding exists, a surviving claim counts as a finding only when some of its analysis' findings
    replicate ("k of n replicate" is added to its numbers); one whose findings all fail to replicate
    is shown greyed under "Survived its control, not replicated"."""
    chosen = select(claims_by_section, limit)
    total = sum(len(cs) for cs in claims_by_section)
    rep = replication or {}
    for c in chosen:
        if c.analysis in rep and rep[c.analysis][1]:
            k, n = rep[c.analysis]
            c.replication = f"{k} of {n} replicate"
    unrep = [c for c in chosen if c.survives and c.analysis in rep and rep[c.analysis][0] == 0]
    found = [c for c in chosen if c.survives and c not in unrep]
    null = [c for c in chosen if not c.survives]
    parts = ['<section id="key-findings" class="keyfindings"><div class="kf-text"><h2>Key findings</h2>']
    if found:
        parts.append('<ol class="claims">' + "".join(_claim_li(c) for c in found) + "</ol>")
    else:
        parts.append('<p class="muted">No claim survived its control or baseline in this run.</p>')
    if unrep:
        parts.append('<h3 class="kf-null">Survived its control, not replicated (other half of the images, '
                     'another seed, neighbouring thresholds)</h3>'
                     '<ol class="claims">' + "".join(_claim_li(c, "no unreplicated") for c in unrep) + "</ol>")
    if null:
        parts.append('<h3 class="kf-null">Checked, not found (did not survive the control)</h3>'
                     '<ol class="claims">' + "".join(_claim_li(c) for c in null) + "</ol>")
    k = total - len(chosen)
    more = f" {k} more claim{'s are' if k > 1 else ' is'} in {'their sections' if k > 1 else 'its section'}." if k > 0 else ""
    parts.append('<p class="kf-rule">Each line is generated from the saved findings: effect [95% interval] vs '
                 "its control or baseline; ✓ = survives it by the rule on hover (also in each section), "
                 f"✗ = does not, so it is not a finding.{more}</p>" + terms_html(found + unrep + null) + "</div>")
    if teaser:
        parts.append(f'<div class="kf-teaser">{teaser}</div>')
    parts.append("</section>")
    return "".join(parts)
