"""run_analyses gives each analysis the findings of those before it (data.extra["findings"]): agreement
and replication read them instead of re-running the base analyses."""
import torch

from interp_gan.config import PipelineConfig
from interp_gan.pipeline import run_analyses

from conftest import make_tiny_data, make_tiny_subject


def test_agreement_and_replication_read_the_earlier_findings_of_the_run():
    subject = make_tiny_subject()
    data = make_tiny_data(subject, n=32)
    su = dict(layers=["blocks.1.conv2"], n_boot=20, n_perm=50, control=False)
    cfg = PipelineConfig.from_dict({"name": "t", "seed": 0, "analyses": {
        "style_units": su,
        "directions": dict(methods=["pca", "random"], n_samples=32, n_directions=2, n_random=2, n_images=8,
                           steps=[-2.0, 0.0, 2.0], n_boot=20, n_perm=20, unit_layer="blocks.1.conv2"),
        "agreement": dict(k=2, n_perm=99),
        "replication": dict(analyses=["style_units"])}})
    torch.manual_seed(0)
    findings, failed = run_analyses(subject, data, cfg)
    assert not failed, {k: f.skipped for k, f in findings.items()}
    ag = findings["agreement"]
    assert not ag.skipped and set(ag.tables["agreement_sets"].method) == {"style_units", "directions"}
    assert (ag.tables["agreement"].layer == "blocks.1.conv2").all() and len(ag.tables["agreement"])
    rep = findings["replication"]
    assert not rep.skipped and not any("run here" in n for n in rep.notes)   # used the run's style_units
    n_found = int((findings["style_units"].tables["style_units"].q_value < 0.05).sum())
    assert len(rep.tables["replication_summary"]) == n_found
    assert list(findings) == ["style_units", "directions", "agreement", "replication"]


def test_a_one_style_model_skips_agreement_saying_so_in_the_estimate_and_the_report():
    """Old code: after directions and attribution ran on a one-style model (fast neural style, CUT),
    agreement skipped with "needs unit sets from at least two of ...; got none" (none: no method
    names units per style without a second style) and the estimate did not say it would skip."""
    from interp_gan.analyses.base import AnalysisData, build_analysis
    from interp_gan.analyses.cost import UnitCosts
    from interp_gan.findings import Finding
    from interp_gan.subject import Subject

    subject = Subject.from_module(torch.nn.Conv2d(3, 3, 1), style_names=["translated"])
    data = AnalysisData(content=torch.zeros(4, 3, 8, 8), style_ids=torch.zeros(4, dtype=torch.long),
                        extra={"findings": {"directions": Finding("directions", {}, tables={})}})
    ag = build_analysis("agreement", k=2, n_perm=9)
    f = ag.run(subject, data)
    assert f.skipped.startswith("the subject has one style (translated); agreement compares the units")
    unit = UnitCosts(forward_s=0.01, grad_s=0.02, image_size=8, batch_size=4)
    assert ag.estimate_cost(subject, data, unit).skip == f.skipped
