"""The "Key findings" box: claims generated from the findings, each with its effect, interval, control
verdict and a link to its section; a claim that does not survive its control is never listed as a finding."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from interp_gan.findings import Finding
from interp_gan.reporting import ReportContext, write_report
from interp_gan.reporting.claims import Claim, key_findings_html
from interp_gan.reporting.numbers import latex_num, pct, sig


def _dissection(analysis: str, labelled: int, labelled_control: int, n: int = 200) -> Finding:
    units = pd.DataFrame({"layer": "L", "unit": range(n), "concept": "red", "iou": 0.1, "ci_low": 0.05,
                          "ci_high": 0.15, "p_value": 0.01, "q_value": 0.5, "label": "",
                          "labelled": [i < labelled for i in range(n)], "threshold": 0.5})
    iou = pd.DataFrame({"layer": "L", "unit": list(range(n)) * 2, "concept": ["red"] * n + ["blue"] * n,
                        "iou": np.linspace(0, 0.2, 2 * n)})
    control = pd.DataFrame({"layer": ["L", "all"], "units": [n, n], "labelled_trained": [labelled] * 2,
                            "labelled_control": [labelled_control] * 2, "frac_trained": [labelled / n] * 2,
                            "frac_control": [labelled_control / n] * 2, "tests_q05_trained": [0.1] * 2,
                            "tests_q05_control": [0.1] * 2})
    return Finding(analysis, params={"alpha": 0.05, "iou_threshold": 0.04},
                   tables={f"{analysis}_units": units, f"{analysis}_iou": iou, f"{analysis}_control": control},
                   notes=["what was dissected"], section={"title": analysis, "order": 20})


def _ablation(p_random: float) -> Finding:
    rows = []
    for style in ("a", "b"):
        for base in ("top", "random"):
            rows.append(dict(layer="L", units="1;2", intervention="zero", target=f"log_odds(style={style})",
                             effect=-0.2, ci_low=-0.3, ci_high=-0.1, n=16, k=2, baseline=base, style=style,
                             measure="log_odds", n_sets=19, direction="decrease",
                             p_random=p_random if base == "top" else np.nan,
                             q_random=p_random if base == "top" else np.nan,
                             beyond_random=p_random <= 0.05 if base == "top" else np.nan,
                             random_low=-0.3, random_high=-0.1))
    return Finding("ablation", params={"intervention": "zero"}, tables={"ablation": pd.DataFrame(rows)},
                   section={"title": "Ablation", "order": 40})


def _report(tmp_path, findings) -> str:
    out = write_report(tmp_path / "r", findings, ReportContext(name="claims"), strict=True, paper=False)
    return (out / "index.html").read_text()


def _box(page: str) -> tuple[str, str]:
    box = page[page.index('<section id="key-findings"'):page.index("</section>", page.index('id="key-findings"'))]
    found, _, null = box.partition('class="kf-null"')
    return found, null


def test_a_claim_that_fails_its_control_is_never_listed_as_a_finding(tmp_path):
    # planted: generator units labelled at the control's rate (fails); discriminator far above (survives);
    # ablation no better than random units (fails)
    page = _report(tmp_path, [_dissection("dissection", 10, 10), _dissection("discriminator_dissection", 40, 2),
                              _ablation(p_random=0.6)])
    found, null = _box(page)
    assert found.count('<li class="claim ok">') == 1 and "40 of 200 discriminator units labelled" in found
    assert "generator units" not in found and "random units" not in found        # the failures are not findings
    assert null.count('<li class="claim no">') == 2
    assert "No evidence that training made concept generator units" in null
    assert "No evidence that the 2 most style-selective units of L carry the style" in null
    for li in re.findall(r'<li class="claim.*?</li>', found + null):
        assert re.search(r"\[[-0-9.e%]+, [-0-9.e%]+\]", li), li                     # an interval
        assert "✓" in li or "✗" in li                                              # the control's verdict
        anchor = re.search(r'href="#([^"]+)"', li).group(1)
        assert f'<section id="{anchor}"' in page                                   # links to its evidence
    # each section opens with its one-line result
    for anchor in ("dissection", "discriminator_dissection", "ablation"):
        sec = page[page.index(f'<section id="{anchor.replace("_", "-")}"'):]
        assert sec.split("</h2>", 1)[1].lstrip().startswith('<p class="result">'), anchor


def test_the_same_ablation_beyond_random_is_a_finding(tmp_path):
    found, null = _box(_report(tmp_path, [_ablation(p_random=0.05)]))
    assert "more than random 2-unit sets do (its rank among 19, BH q at most 0.05), in 2 of 2 styles" in found and "claim no" not in null


def test_box_takes_one_claim_per_section_first_and_at_most_six():
    mk = lambda i, ok: Claim(f"claim {i}", effect="1", ci="[0, 2]", survives=ok, verdict="v", anchor="a")  # noqa: E731
    html = key_findings_html([[mk(0, True), mk(1, True)], [mk(2, False)], *[[mk(i, True)] for i in range(3, 9)]])
    assert html.count("<li class=\"claim") == 6
    assert "claim 1" not in html and "claim 2" in html                          # every section before seconds
    assert "3 more claims are in their sections" in html


@pytest.mark.parametrize("x, want", [(0.123456, "0.123"), (-4.43e-05, "-4.43e-05"), (1234.5, "1234"),
                                     (10.125, "10.1"), (0.0, "0"), (5, "5"), (float("nan"), "–"),
                                     (-0.00004999, "-5.00e-05"), (123456.0, "1.23e+05")])
def test_one_number_format(x, want):
    assert sig(x) == want


def test_numbers_never_print_minus_zero_and_latex_uses_times_ten():
    assert latex_num(-4.43e-05) == "$-4.43\\times10^{-5}$"
    assert latex_num(-0.044) == "$-0.0440$" and latex_num(0.5) == "0.500"
    assert pct(0.0625) == "6.25%" and pct(0) == "0%"


def test_compare_two_runs_claim_by_claim(tmp_path):
    """`interp-gan report --compare A B`: each run's claims rebuilt from its saved findings, side by side,
    with the rows whose verdict changed marked."""
    from interp_gan.cli import main
    write_report(tmp_path / "a", [_dissection("dissection", 10, 10), _ablation(0.6)], ReportContext(name="a"),
                 strict=True, paper=False)
    write_report(tmp_path / "b", [_dissection("dissection", 60, 10), _ablation(0.6)], ReportContext(name="b"),
                 strict=True, paper=False)
    assert main(["report", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")]) == 0
    page = (tmp_path / "c" / "index.html").read_text()
    assert "No evidence that training made concept generator units: 10 of 200" in page         # A fails
    assert "60 of 200 generator units labelled at q &lt; 0.05 with a concept" in page           # B survives
    rows = re.findall(r"<tr class=\"(\w*)\"><th>([^<]+)</th>", page)
    assert ("changed", "dissection") in rows and ("", "Causal ablation of style units") in rows
    df = pd.read_csv(tmp_path / "c" / "compare.csv")
    assert set(df.run) == {"A", "B"} and df.groupby("run").size().tolist() == [2, 2]
    assert 'href="../a/index.html"' in page
    assert main(["report"]) == 2                                                               # neither: one line


def test_ablation_claim_reads_the_largest_set_size_that_has_a_random_baseline():
    """A set of every unit of the layer (k = 32 of 32) has no random sets; the claim used to read
    that row and say "not compared with random units" although k = 2 was compared."""
    from interp_gan.reporting.section_ablation import claim
    df = _ablation(p_random=0.01).tables["ablation"]
    whole = df[df["baseline"] == "top"].assign(k=32, p_random=np.nan, q_random=np.nan, beyond_random=np.nan)
    c = claim(pd.concat([df, whole], ignore_index=True))
    assert c.verdict == "beyond random units" and "the 2 most style-selective units" in c.text, c.text
    only_whole = claim(whole)
    assert only_whole.verdict == "no baseline"
