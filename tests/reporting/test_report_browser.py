"""The report renders in headless Chromium with no JS error, no network request, and drawn plots.

A probe script is injected as the first element of <head> (in a copy of the page, next to it
so relative assets resolve). It records uncaught errors, console.error calls, failed resource
loads and every non-file resource URL, then after load writes them (and how many plotly plots
drew an SVG) into the DOM, which ``--dump-dom`` prints. Chromium also gets a host resolver
that fails every lookup, so nothing can leave the machine. The negative controls prove the
probe does catch a thrown error and a CDN script.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from interp_gan.findings import Finding
from interp_gan.reporting import ImageGrid, ReportContext, Section, register_section, write_report

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")

_PROBE = """<script>(function(){
var R = {errors: [], console_errors: []};
window.addEventListener('error', function(e){
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) R.errors.push('resource failed: ' + (t.src || t.href));
  else R.errors.push(String(e.message || e));
}, true);
window.addEventListener('unhandledrejection', function(e){ R.errors.push('rejection: ' + e.reason); });
var ce = console.error; console.error = function(){ R.console_errors.push([].join.call(arguments, ' ')); ce.apply(console, arguments); };
window.addEventListener('load', function(){ setTimeout(function(){
  R.external = performance.getEntriesByType('resource').map(function(x){ return x.name; })
      .filter(function(u){ return !/^(file|data|blob|about):/.test(u); });
  var plots = Array.prototype.slice.call(document.querySelectorAll('.js-plotly-plot'));
  R.plots = plots.length;
  R.drawn = plots.filter(function(p){ return p.querySelector('svg.main-svg .trace, svg.main-svg .hm image'); }).length;
  R.images = document.querySelectorAll('img').length;
  R.wrapped_numbers = Array.prototype.filter.call(document.querySelectorAll('td.num'), function(td){
      var r = document.createRange(); r.selectNodeContents(td);
      var tops = {}; Array.prototype.forEach.call(r.getClientRects(), function(x){ tops[Math.round(x.top)] = 1; });
      return Object.keys(tops).length > 1; }).map(function(td){ return td.textContent; });
  var act = document.querySelector('.sidebar > ol > li > a.active');
  R.active = act ? act.getAttribute('href') : null;
  R.clipped_captions = Array.prototype.filter.call(document.querySelectorAll('figcaption'),
      function(e){ return e.scrollWidth > e.clientWidth + 1; }).map(function(e){ return e.textContent; });
  R.page_width = document.documentElement.scrollWidth;   // > innerWidth: the page scrolls sideways
  var kt = document.querySelector('#key-findings .kf-text');
  R.kf_text_width = kt ? kt.getBoundingClientRect().width : 0;
  // the first screen of a 1400 x 900 window (headless Chromium's innerHeight is smaller than its
  // window, and nothing on the page is sized by the viewport height, so measure against 900)
  var H = __FIRST_SCREEN_H__, W = window.innerWidth;
  function inView(e){ var r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && r.top >= 0 && r.bottom <= H && r.left >= 0 && r.right <= W; }
  var kf = document.getElementById('key-findings');
  R.first_screen = {width: W, height: H, key_findings: !!kf && kf.getBoundingClientRect().top < H,
    claims: Array.prototype.filter.call(document.querySelectorAll('#key-findings li.claim'), inView).length,
    images: Array.prototype.filter.call(document.querySelectorAll('img'), inView).length};
  var p = document.createElement('pre'); p.id = '__probe_result'; p.textContent = JSON.stringify(R);
  document.body.appendChild(p);
}, 300); });
})();</script>"""


def browser_probe(page: Path, tmp: Path, window: tuple[int, int] = (1400, 900)) -> dict:
    """Open ``page`` in headless Chromium (offline) and return what the probe recorded."""
    text = page.read_text(encoding="utf-8")
    probed = page.with_name("_probe_" + page.name)
    probe = _PROBE.replace("__FIRST_SCREEN_H__", str(window[1]))
    probed.write_text(re.sub(r"<head>", "<head>" + probe, text, count=1), encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={tmp / 'chrome-profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--window-size={window[0]},{window[1]}", "--hide-scrollbars",
           "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="__probe_result">(.*?)</pre>', proc.stdout, flags=re.S)
    assert m, f"probe result missing; chromium rc={proc.returncode}, stderr tail: {proc.stderr[-800:]}"
    return json.loads(html.unescape(m.group(1)))


@register_section("_browser_demo")
def _demo_section(f, ctx):
    df = f.tables["browser_rows"]
    return Section("Browser demo", [go.Figure(go.Scatter(x=df["x"], y=df["y"])),
                                    go.Figure(go.Heatmap(z=np.arange(12).reshape(3, 4))),
                                    ImageGrid(f.arrays["img"], captions=["one", "two"])])


@needs_chromium
def test_report_renders_offline_without_errors(tmp_path):
    f = Finding("_browser_demo", tables={"browser_rows": pd.DataFrame({"x": [0, 1, 2], "y": [1, 3, 2]})},
                arrays={"img": np.full((2, 8, 8, 3), 200, dtype=np.uint8)})
    out = write_report(tmp_path / "rep", [f, Finding.skip("_browser_skipped", "planted")],
                       ReportContext(name="browser"), strict=True, paper=False)
    r = browser_probe(out / "index.html", tmp_path)
    assert r["errors"] == [] and r["console_errors"] == [], r
    assert r["external"] == [], r
    assert r["plots"] == 2 and r["drawn"] == 2, r          # both plotly figures actually drew an SVG
    assert r["images"] == 2, r


@needs_chromium
def test_probe_catches_js_error(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<html><head></head><body><script>throw new Error('planted boom')</script></body></html>")
    r = browser_probe(page, tmp_path)
    assert any("planted boom" in e for e in r["errors"]), r


@needs_chromium
def test_probe_catches_cdn_script(tmp_path):
    page = tmp_path / "cdn.html"
    page.write_text('<html><head><script src="https://cdn.plot.ly/plotly-2.35.2.min.js"></script>'
                    "</head><body><p>x</p></body></html>")
    r = browser_probe(page, tmp_path)
    assert r["external"] or any("cdn.plot.ly" in e for e in r["errors"]), r
    assert any("cdn.plot.ly" in u for u in r["external"] + r["errors"]), r


def _claims_report(tmp_path, style_names: list[str]) -> Path:
    """A report of the claims test's small planted findings plus an overview whose samples show
    each of ``style_names``."""
    from test_report_claims import _ablation, _dissection      # the planted findings of the claims test
    rng = np.random.default_rng(0)
    overview = Finding("overview", tables={"evaluation": pd.DataFrame({"metric": ["acc_texture"], "value": [0.7]})},
                       arrays={"content": rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8),
                               "generated": rng.integers(0, 255, (len(style_names), 2, 32, 32, 3), dtype=np.uint8)},
                       section={"title": "Model overview", "order": 10})
    findings = [overview, _dissection("dissection", 10, 10), _dissection("discriminator_dissection", 40, 2),
                _ablation(p_random=0.6)]
    return write_report(tmp_path / "rep", findings, ReportContext(name="claims", style_names=style_names),
                        strict=True, paper=False)


@needs_chromium
def test_first_screen_shows_key_findings_with_claims_and_a_picture(tmp_path):
    """At 1400 x 900 the first screen holds the Key findings box with at least 3 claims and at least one
    image, with no JS error and no network request (the report built from small planted findings)."""
    out = _claims_report(tmp_path, ["a", "b", "c"])
    r = browser_probe(out / "index.html", tmp_path)
    assert r["errors"] == [] and r["console_errors"] == [] and r["external"] == [], r
    fs = r["first_screen"]
    assert (fs["width"], fs["height"]) == (1400, 900), fs
    assert fs["key_findings"] and fs["claims"] >= 3 and fs["images"] >= 1, fs


@needs_chromium
def test_a_wide_table_scrolls_in_its_box_and_the_page_does_not(tmp_path):
    """A table of 40 columns with long unbroken cells (ONNX layer names), and a note with a long
    path: the table scrolls inside its own box, the page itself never scrolls sideways."""
    long = "/model/residual_block_3/conv2/Conv_output_0/" * 3
    wide = pd.DataFrame({f"column_{i}_{long[:30]}": [long, 0.123456, 7] for i in range(40)})
    f = Finding("_wide_table", tables={"wide": wide}, notes=[f"read from {long * 2}"])
    out = write_report(tmp_path / "rep", [f], ReportContext(name="wide"), strict=False, paper=False)
    r = browser_probe(out / "index.html", tmp_path)
    assert r["errors"] == [] and r["console_errors"] == [], r
    assert r["page_width"] <= r["first_screen"]["width"], r


@needs_chromium
def test_many_styles_keep_the_key_findings_readable(tmp_path):
    """multistyle26: the picture beside the key findings had 27 columns, squeezed the claims to one
    word per line and made the page scroll sideways. Now it shows an even sample of 4 styles (the
    overview shows all) and the text keeps most of the box."""
    out = _claims_report(tmp_path, [f"lite{i:02d}" for i in range(26)])
    assert "Content → 4 of 26 styles" in (out / "index.html").read_text(encoding="utf-8")
    r = browser_probe(out / "index.html", tmp_path)
    assert r["errors"] == [] and r["console_errors"] == [], r
    assert r["page_width"] <= r["first_screen"]["width"], r
    assert r["kf_text_width"] >= 500 and r["first_screen"]["claims"] >= 3, r


_LONG_CAPTIONS = ["svm 0 (lite01->lite03) Δ6.41 · -3σ", "random 0 Δ0.905 · -3σ"]


@register_section("_browser_captions")
def _captions_section(f, ctx):
    return Section("Captions", [ImageGrid(f.arrays["img"], captions=_LONG_CAPTIONS, ncols=2)])


@needs_chromium
def test_a_long_image_caption_wraps_and_is_never_cut(tmp_path):
    """The direction traversals' row captions ("svm 0 (lite01->lite03) Δ6.4 · -3σ") were cut with an
    ellipsis at 128 px, hiding the target style; a caption now wraps inside its cell."""
    f = Finding("_browser_captions", arrays={"img": np.zeros((2, 16, 16, 3), np.uint8)})
    out = write_report(tmp_path / "rep", [f], ReportContext(name="captions"), paper=False)
    r = browser_probe(out / "index.html", tmp_path)
    assert r["errors"] == [] and r["clipped_captions"] == [], r


@needs_chromium
def test_the_sidebar_marks_key_findings_at_the_top_of_a_tall_header(tmp_path):
    """With the "Analysed: ..." line and the input notes the Key findings box starts below the line the
    sidebar reads, and at the top of the page no entry was marked; the first one is."""
    meta = {"model": {"name": "stylenet"}, "checkpoint_path": "runs/a/" + "long_folder_name/" * 6 + "c.safetensors",
            "step": 1200, "pipeline": {"n_images": 64, "image_size": 64, "data": "embedded"},
            "data_notes": ["3 file(s) left out (hidden 3)", "style folder 'x' not used"]}
    f = Finding("_browser_captions", arrays={"img": np.zeros((2, 16, 16, 3), np.uint8)})
    out = write_report(tmp_path / "rep", [f], ReportContext(name="tall", meta=meta,
                                                            style_names=[f"style{i}" for i in range(8)]), paper=False)
    r = browser_probe(out / "index.html", tmp_path)
    assert r["errors"] == [] and r["active"] == "#key-findings", r


@needs_chromium
def test_a_number_in_a_crowded_table_stays_on_one_line(tmp_path):
    """The agreement table (14 columns) broke its p-values as "5.00e-" over "04"."""
    df = pd.DataFrame({**{f"method_{i}": ["style_units"] * 3 for i in range(4)},
                       "p_value": [5e-4, 0.163, 1.0], "q_value": [5e-4, 0.722, 1.0],
                       **{f"units_{i}": ["50;58;84;104;110;" * 3] * 3 for i in range(6)}})
    f = Finding("_crowded_table", tables={"crowded": df})
    out = write_report(tmp_path / "rep", [f], ReportContext(name="crowded"), paper=False)
    r = browser_probe(out / "index.html", tmp_path)
    assert r["errors"] == [] and r["wrapped_numbers"] == [], r
