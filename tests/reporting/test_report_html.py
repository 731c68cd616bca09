"""write_report: files, CSV columns, manifest, offline HTML, skipped/erroring sections, BibTeX."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import interp_gan.reporting as reporting
from interp_gan.findings import Finding
from interp_gan.reporting import ImageGrid, ReportContext, Section, Table, register_section, write_report

SHA = "0123456789abcdef" * 4


@register_section("_test_units")
def _units_section(f, ctx):
    df = f.tables["test_units"]
    fig = go.Figure(go.Bar(x=df["unit"], y=df["iou"]))
    sec = Section("Test units", ["<p>planted section text</p>", fig,
                                 ImageGrid(f.arrays["images"], captions=["a", "b"], ncols=2),
                                 Table(df, caption="units")], figures={"iou_bar": fig})
    sec.references = ["wang2004ssim"]
    return sec


@register_section("_test_boom")
def _boom_section(f, ctx):
    raise RuntimeError("planted section failure 42")


def _findings() -> list[Finding]:
    rng = np.random.default_rng(0)
    units = pd.DataFrame({"layer": ["blocks.0"] * 4, "unit": [0, 1, 2, 3], "iou": rng.random(4),
                          "ci_low": [0.1] * 4, "ci_high": [0.3] * 4, "q_value": [0.01, 0.2, 0.5, 0.9]})
    ok = Finding("_test_units", params={"k": 3}, tables={"test_units": units},
                 arrays={"images": rng.integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)},
                 notes=["a planted note"], provenance={"seed": 7})
    boom = Finding("_test_boom", tables={"boom_rows": pd.DataFrame({"x": [1, 2]})})
    skipped = Finding.skip("_test_skip", "planted reason: no discriminator")
    return [ok, boom, skipped]


def _ctx() -> ReportContext:
    return ReportContext(name="unit", meta={"sha256": SHA, "data_fingerprint": "fp-123",
                                            "config": {"n_images": 4}, "seed": 7}, style_names=["a", "b"])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "unit"
    write_report(out, _findings(), _ctx(), static_figures=False)
    return out


def test_report_files_and_tables(report):
    for rel in ["index.html", "manifest.json", "findings.json", "references.bib", "assets/plotly.min.js",
                "findings/test_units.csv", "findings/boom_rows.csv", "findings/_test_units/finding.json",
                "paper/test_units.tex", "paper/references.bib"]:
        assert (report / rel).is_file(), rel
    df = pd.read_csv(report / "findings/test_units.csv")
    assert list(df.columns) == ["layer", "unit", "iou", "ci_low", "ci_high", "q_value"]
    assert len(df) == 4
    back = Finding.load(report / "findings/_test_units")
    pd.testing.assert_frame_equal(back.tables["test_units"], df)
    assert back.arrays["images"].shape == (2, 16, 16, 3)
    assert "\\toprule" in (report / "paper/test_units.tex").read_text()
    allf = json.loads((report / "findings.json").read_text())
    assert set(allf) == {"_test_units", "_test_boom", "_test_skip"}
    assert allf["_test_skip"]["skipped"].startswith("planted reason")


def test_manifest(report):
    m = json.loads((report / "manifest.json").read_text())
    assert m["checkpoint_sha256"] == SHA and m["data_fingerprint"] == "fp-123" and m["seed"] == 7
    assert m["config"] == {"n_images": 4}
    for pkg in ("torch", "plotly", "pandas", "captum", "python"):
        assert m["versions"][pkg], pkg
    by = {f["analysis"]: f for f in m["findings"]}
    assert by["_test_units"]["section"] == "ok"
    assert by["_test_units"]["tables"]["test_units"]["csv"] == "findings/test_units.csv"
    assert by["_test_skip"]["section"] == "skipped" and by["_test_skip"]["skipped"]
    assert by["_test_boom"]["section"].startswith("error: RuntimeError")
    assert m["exports"]["static_figures"] == {"skipped": "static_figures=False"}


def test_html_offline_and_sections(report):
    page = (report / "index.html").read_text()
    # No external script/link/img source anywhere (no CDN, no web fonts).
    srcs = re.findall(r'<(?:script|link|img|iframe)[^>]*?(?:src|href)\s*=\s*["\']([^"\']+)', page, flags=re.I)
    assert "assets/plotly.min.js" in srcs
    assert not [s for s in srcs if re.match(r"(https?:)?//", s)], srcs
    assert "@import" not in page and "url(http" not in page
    assert page.count('src="assets/plotly.min.js"') == 1
    assert "planted section text" in page and "a planted note" in page
    assert "planted reason: no discriminator" in page                  # skipped section says why
    assert "planted section failure 42" in page                       # failing section shows its error
    assert len(re.findall(r"data:image/(?:png|jpeg|webp);base64,", page)) == 2   # the ImageGrid, inline
    for anchor in ("_test_units", "_test_boom", "_test_skip", "references"):
        slug = re.sub(r"[^a-z0-9]+", "-", anchor).strip("-")
        assert f'href="#{slug}"' in page and f'id="{slug}"' in page, anchor


def test_references_bib(report):
    bib = (report / "references.bib").read_text()
    entries = re.findall(r"@(article|inproceedings|book|misc)\{([^,]+),", bib)
    keys = [k for _, k in entries]
    assert "wang2004ssim" in keys                   # cited by the section that ran
    assert bib.count("{") == bib.count("}")
    assert all(re.search(rf"{k},[^@]*title = ", bib) for k in keys)
    assert "References" in (report / "index.html").read_text()


def test_every_cited_key_has_an_entry():
    from interp_gan.analyses import list_analyses
    from interp_gan.analyses.base import get_analysis
    from interp_gan.reporting.references import REFERENCES
    from interp_gan.reporting.section_attribution import METHOD_REFERENCES
    cited = [k for a in list_analyses() for k in get_analysis(a).references] + list(METHOD_REFERENCES.values())
    from interp_gan.reporting.section_overview import _MODEL_PAPERS
    cited += [k for keys in _MODEL_PAPERS.values() for k in keys]
    cited += ["zhu2017cyclegan", "isola2017pix2pix", "choi2018stargan", "voynov2020unsupervised", "choi2020starganv2",
              "bulat2017fan", "wang2019adaptivewing"]
    assert [k for k in cited if k not in REFERENCES] == []


def test_strict_reraises(tmp_path):
    with pytest.raises(RuntimeError, match="planted section failure 42"):
        write_report(tmp_path / "s", _findings(), _ctx(), strict=True, paper=False)


def test_duplicate_findings_rejected(tmp_path):
    f = _findings()[0]
    with pytest.raises(ValueError, match="two findings"):
        write_report(tmp_path / "d", [f, f], _ctx(), paper=False)


def test_broken_section_module_raises(monkeypatch):
    monkeypatch.setattr(reporting, "section_modules", lambda: ["section_does_not_exist_planted"])
    with pytest.raises(ImportError, match="section_does_not_exist_planted failed to import"):
        reporting._import_sections()


def test_every_section_module_registers():
    # Every section_*.py present imported with the package; the overview one registered itself.
    assert "section_overview" in reporting.section_modules()
    assert "overview" in reporting.list_sections()


def test_rerender_from_saved_report(report, tmp_path):
    # what `interp-gan report DIR` does: reload the saved findings and the manifest's meta
    m = json.loads((report / "manifest.json").read_text())
    found = {p.name: Finding.load(p) for p in sorted((report / "findings").iterdir()) if p.is_dir()}
    assert set(found) == {"_test_units", "_test_boom", "_test_skip"}
    out = write_report(tmp_path / "again", found, ReportContext(name="again", meta=m["meta"]), paper=False)
    m2 = json.loads((out / "manifest.json").read_text())
    assert m2["checkpoint_sha256"] == SHA and m2["seed"] == 7
    assert pd.read_csv(out / "findings/test_units.csv").equals(pd.read_csv(report / "findings/test_units.csv"))


def test_manifest_falls_back_to_provenance(tmp_path):
    f = Finding("_test_units", tables=_findings()[0].tables, arrays=_findings()[0].arrays,
                provenance={"checkpoint_sha256": "c" * 64, "data_fingerprint": "fp-prov",
                            "pipeline": {"name": "p"}, "seed": 3})
    out = write_report(tmp_path / "p", [f], ReportContext(name="p"), paper=False)
    m = json.loads((out / "manifest.json").read_text())
    assert (m["checkpoint_sha256"], m["data_fingerprint"], m["config"], m["seed"]) == ("c" * 64, "fp-prov",
                                                                                      {"name": "p"}, 3)


def test_inline_images_are_lossy_only_where_much_smaller_and_decode_to_the_same_size():
    import base64
    import io

    from PIL import Image

    from interp_gan.reporting.render import image_data_uri

    flat = np.zeros((64, 64, 3), np.uint8)
    flat[:, 32:] = (200, 30, 30)                                        # two flat colours: stays lossless
    ramp = np.linspace(0, 200, 64)[None, :, None] + np.linspace(0, 40, 64)[:, None, None]
    noise = np.random.default_rng(0).normal(0, 8, (64, 64, 3))
    noisy = np.clip(ramp + noise, 0, 255).astype(np.uint8)             # photo-like: smooth + grain
    for img, exact, lossy in ((flat, True, "webp"), (flat, True, "jpeg"), (noisy, False, "webp"),
                              (noisy, False, "jpeg")):
        uri = image_data_uri(img, lossy=lossy)
        fmt = uri.split(";")[0].split("/")[1]
        assert fmt in (("png", "webp") if exact else (lossy,)), (exact, lossy, uri[:30])
        back = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))
        assert back.shape == img.shape
        if exact:
            assert np.array_equal(back, img)                            # lossless
        else:
            assert np.abs(back.astype(int) - img).mean() < 6           # close to the original


def test_a_skipped_analysis_is_neutral_and_input_notes_warn():
    """A skipped section ("needs two styles") is not a warning: grey; the input notes (images left
    out, model assumptions) keep the warning colours. Both used the warning amber before."""
    from interp_gan.reporting.html import _CSS
    var = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-f]{6})", _CSS))
    skip_rule = re.search(r"^\.skip \{([^}]*)\}", _CSS, re.M).group(1)
    notes_rule = re.search(r"^\.skip\.input-notes \{([^}]*)\}", _CSS, re.M).group(1)
    assert "var(--skipbg)" in skip_rule and "var(--warnbg)" in notes_rule
    amber = {"#fffaeb", "#93370d", "#f79009"}
    assert var["skipbg"] not in amber and var["skip"] not in amber and "#f79009" not in skip_rule
    assert var["warnbg"] in amber and var["warn"] in amber
