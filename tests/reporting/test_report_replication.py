"""The replication and agreement sections, and the Key findings box counting only replicated findings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp_gan.findings import Finding
from interp_gan.reporting import ReportContext, write_report
from interp_gan.reporting.claims import Claim, key_findings_html, replicated_counts
from interp_gan.reporting.numbers import pct
from interp_gan.reporting.section_replication import agreement_section, replication_section

from test_report_claims import _box, _dissection


def _replication(n_found: int, n_replicated: int, analysis: str = "dissection") -> Finding:
    summ = pd.DataFrame({"analysis": analysis, "layer": "L", "unit": range(n_found), "direction": "", "label": "red",
                         "conditions": 6, "survived": 3, "fraction": 0.5, "split_half": False,
                         "replicates": [i < n_replicated for i in range(n_found)]})
    rep = summ.assign(condition="split_half", param="", survives=summ.replicates, value=0.1, q_value=0.01)[
        ["analysis", "layer", "unit", "direction", "label", "condition", "param", "survives", "value", "q_value",
         "fraction", "replicates"]]
    sens = pd.DataFrame({"analysis": ["dissection"], "quantity": ["labelled-unit rate"], "condition": ["original"],
                         "param": ["quantile=0.99, iou_threshold=0.04"], "count": [n_found], "total": [200],
                         "value": [n_found / 200]})
    return Finding("replication", params={"min_fraction": 0.75},
                   tables={"replication": rep, "replication_summary": summ, "sensitivity": sens},
                   notes=[f"{n_replicated} of {n_found} findings replicate"],
                   section={"title": "Replication", "order": 90})


def test_a_surviving_claim_whose_findings_do_not_replicate_is_not_a_finding(tmp_path):
    findings = {"dissection": _dissection("dissection", 60, 5), "replication": _replication(60, 0)}
    found, rest = _box(write_report(tmp_path / "a", findings, ReportContext(name="r"), strict=True,
                                    paper=False).joinpath("index.html").read_text())
    assert "Survived its control, not replicated" in rest and "0 of 60 replicate" in rest
    assert "labelled at q" not in found                               # not counted among the findings
    findings["replication"] = _replication(60, 12)
    found, rest = _box(write_report(tmp_path / "b", findings, ReportContext(name="r"), strict=True,
                                    paper=False).joinpath("index.html").read_text())
    assert "labelled at q" in found and "12 of 60 replicate" in found and "not replicated" not in rest


def test_without_a_replication_finding_the_box_is_unchanged():
    c = Claim("x", effect="1", survives=True, analysis="dissection")
    assert key_findings_html([[c]]) == key_findings_html([[c]], replication={})
    assert replicated_counts(None) == {} and replicated_counts(_replication(4, 3)) == {"dissection": (3, 4)}


def test_sections_build_from_the_findings_alone(tmp_path):
    sec = replication_section(Finding.load(_replication(5, 2).save(tmp_path / "r")), ReportContext())
    assert sec.claims[0].survives and "2 of 5" in sec.claims[0].text
    assert any(isinstance(b, go.Figure) for b in sec.blocks)
    assert any("Sensitivity" in b for b in sec.blocks if isinstance(b, str))
    df = pd.DataFrame({"method_a": ["style_units", "style_units"], "method_b": ["directions", "attribution"],
                       "style": "a", "layer": "L", "overlap": [1, 0], "expected_by_chance": [1 / 64, 1 / 64],
                       "p_value": [0.016, 1.0], "q_value": [0.032, 1.0], "n_a": 1, "n_b": 1, "n_units": 64,
                       "units_a": "2", "units_b": ["2", "5"]})
    f = Finding("agreement", params={}, tables={"agreement": df}, notes=["n"], section={"title": "Agreement"})
    sec = agreement_section(f, ReportContext())
    fig = sec.figures["agreement"]
    ratio = np.asarray(fig.data[0].customdata, float)[..., 0]        # the colour is its log2 (white = chance)
    assert np.isclose(np.nanmax(ratio), 64) and np.isclose(np.nanmax(fig.data[0].z), 6)
    assert sec.claims[0].survives and "1 of 2" in sec.claims[0].text
    f.tables["agreement"] = df.assign(q_value=[0.2, 1.0])
    assert not agreement_section(f, ReportContext()).claims[0].survives


def test_agreement_by_construction_is_its_own_family_and_never_the_headline():
    """Four style_units x ablation overlaps (ablation ranks by the same AUROC) at p = 0.0005 and one
    independent overlap at p = 0.009 among 20: in one BH family the four rejections raise the threshold
    and the independent one gets q = 0.043 (the demo's "5 of 24 pairs agree"); within its own family
    of 20 its q is 0.18, and nothing independent agrees."""
    p_ind = [0.009] + [0.16] * 3 + [1.0] * 16
    rows = [dict(method_a="style_units", method_b="ablation", p_value=0.0005, overlap=4) for _ in range(4)]
    rows += [dict(method_a="style_units", method_b="directions", p_value=p, overlap=1 if p < 1 else 0) for p in p_ind]
    df = pd.DataFrame(rows).assign(style="a", layer="L", expected_by_chance=0.2, n_a=5, n_b=5, n_units=128,
                                   units_a="1", units_b="1")
    from interp_gan.findings.stats import bh_qvalues
    old = df.assign(q_value=bh_qvalues(df.p_value.to_numpy()))          # a finding saved with one family
    assert old.q_value.iloc[4] < 0.05
    f = Finding("agreement", params={}, tables={"agreement": old}, notes=["n"], section={"title": "Agreement"})
    c = agreement_section(f, ReportContext()).claims[0]
    assert not c.survives and "0/20" in c.effect and "by construction: 4 of 4" in c.text, (c.text, c.effect)
    from interp_gan.analyses.agreement import family_qvalues
    new = df.assign(independent=[False] * 4 + [True] * 20)
    new = new.assign(q_value=family_qvalues(new))
    assert np.isclose(new.q_value.iloc[4], 0.18) and (new.q_value.iloc[:4] == 0.0005).all()
    f.tables["agreement"] = new
    assert not agreement_section(f, ReportContext()).claims[0].survives
    f.tables["agreement"] = new.assign(q_value=[0.001] * 4 + [0.01] + [1.0] * 19)
    c = agreement_section(f, ReportContext()).claims[0]
    assert c.survives and c.text.startswith("1 of 20 independent"), c.text


def test_replication_rate_has_its_interval():
    from interp_gan.findings.stats import wilson_interval
    sec = replication_section(_replication(5, 2), ReportContext())
    lo, hi = wilson_interval(2, 5)
    assert sec.claims[0].ci == f"[{pct(lo)}, {pct(hi)}]" and sec.claims[0].effect == "40.0% replicate"
