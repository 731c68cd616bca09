"""Report captions read as a researcher reads them (today's one-style families: fast neural style, AnimeGANv2,
U-GAT-IT, CUT): no caption promises a number that was not computed, and a number that undercuts a figure says so."""
import numpy as np
import pandas as pd

from interp_gan.findings import Finding
from interp_gan.reporting.section_directions import traversal_grid


def _directions(effects):
    df = pd.DataFrame({"method": ["pca", "pca", "random"], "index": [0, 1, 0], "style": ["translated"] * 3,
                       "effect": effects})
    arr = np.zeros((3, 3, 3, 4, 4), dtype=np.float32)       # directions x steps x image
    return Finding("directions", {"steps": [-1.0, 0.0, 1.0]}, tables={"directions": df},
                   arrays={"traversal_img0": arr})


def test_traversals_without_a_classifier_do_not_promise_log_odds():
    """Old code: the title read "rows: directions, with Δ log-odds at the largest step" over rows that
    carried none (no classifier scores a one-style model's images)."""
    grid = traversal_grid(_directions([np.nan] * 3))
    assert "with Δ log-odds" not in grid.title and "no Δ log-odds" in grid.title
    grid = traversal_grid(_directions([0.5, -0.2, 0.1]))
    assert "with Δ log-odds at the largest step" in grid.title and "Δ0.5" in grid.captions[0]


def test_a_large_ig_completeness_gap_is_said_with_its_fix():
    """Old code: a table row "max_rel_delta 3.89" (fast neural style, n_steps = 8) with nothing said about it."""
    from interp_gan.reporting import section_attribution as sa
    rows = lambda rel: pd.DataFrame({"target": ["region"] * 2, "source": ["content"] * 2, "method": ["ig"] * 2,
                                     "image": [0, 1], "abs_delta": [1.0, 2.0], "rel_delta": rel, "n_steps": [8, 8]})
    cap = sa.completeness_table(rows([3.891, 0.03])).caption
    assert "misses F(x) - F(baseline) by up to 389% of it at n_steps = 8" in cap and "raise analyses.attribution" in cap
    assert "misses" not in sa.completeness_table(rows([0.02, 0.05])).caption


def test_the_overview_cites_the_loaded_family_paper(tmp_path):
    """Old code: the overview of a fast neural style, AnimeGANv2 or U-GAT-IT model cited StarGAN v2 and
    AdaIN (the project's own model) but not the paper of the network analysed."""
    import torch

    from interp_gan.analyses.base import AnalysisData, build_analysis
    from interp_gan.reporting.references import REFERENCES
    from interp_gan.reporting.sections import ReportContext, get_section
    from interp_gan.subject.loading import load_subject
    from tests.models import test_animegan, test_fast_neural_style, test_ugatit

    files = {"johnson2016perceptual": (test_fast_neural_style.reference_state_dict(), "mosaic.pth"),
             "chen2019animegan": (test_animegan.reference_state_dict(widths=(4, 8, 8, 8), num_res=1), "paprika.pt"),
             "kim2020ugatit": (test_ugatit.params_file(ngf=2, n_blocks=1, light=True), "selfie2anime_params_latest.pt")}
    data = AnalysisData(torch.rand(2, 3, 32, 32) * 2 - 1, torch.zeros(2, dtype=torch.long))
    for key, (sd, name) in files.items():
        torch.save(sd, tmp_path / name)
        f = build_analysis("overview", n_images=2).run(load_subject(tmp_path / name, device="cpu"), data)
        sec = get_section("overview")(f, ReportContext(style_names=["translated"]))
        assert key in sec.references and key in REFERENCES, (name, sec.references)


def test_every_family_we_load_is_cited_with_its_own_paper():
    """Old code: a StyleGAN2 / StyleGAN3 / MUNIT / plain StarGAN v2 report cited none of their papers."""
    from interp_gan.reporting.references import REFERENCES
    from interp_gan.reporting.section_overview import model_references
    want = {"stylegan2": "karras2020stylegan2", "stylegan3": "karras2021stylegan3", "munit": "huang2018munit",
            "stargan_v2": "choi2020starganv2", "cyclegan": "zhu2017cyclegan", "ugatit": "kim2020ugatit"}
    for name, key in want.items():
        refs = model_references({"name": name})
        assert key in refs and all(r in REFERENCES for r in refs), (name, refs)
    assert "Alias-Free" in REFERENCES["karras2021stylegan3"].bibtex()
