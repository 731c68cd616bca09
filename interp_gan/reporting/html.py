"""Assemble ``reports/<name>/`` from Findings: the offline HTML report and its data files.

    ctx = ReportContext(name="demo", meta={"sha256": ckpt.sha256, "data_fingerprint": data.fingerprint,
                                          "config": cfg.to_dict(), "seed": cfg.seed, **ckpt.meta})
    out = write_report(Path("reports/demo"), findings, ctx)       # -> Path("reports/demo")

writes, inside ``out_dir`` (the report's own directory):

    index.html              sidebar + one section per Finding; opens offline (no CDN, no fonts)
    assets/plotly.min.js    plotly.js, once, loaded by a relative <script src>
    manifest.json           checkpoint sha256, data fingerprint, config, seed, package versions,
                            time, and per finding: skipped?, section status, tables -> CSV paths
    findings.json           every Finding's ``to_dict()``
    findings/<table>.csv    every table of every Finding, flat (table names are unique)
    findings/<analysis>/    each Finding via ``Finding.save`` (reload with ``Finding.load``)
    references.bib          the papers cited by the sections that ran
    paper/                  <table>.tex (booktabs), <figure>.svg/.pdf, references.bib

A section is ``get_section(analysis)(finding, ctx)``; an analysis without one gets a plain
section of its tables. A skipped Finding's section states the reason. A section function
that raises shows its error in the report (and re-raises when ``strict=True``).
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import re
import traceback
from pathlib import Path
from typing import Any, Iterable

from interp_gan.guards import subject_config
from interp_gan.edit_meta import describe_edits
from interp_gan.reporting.input_notes import analysed_line, input_notes_html
from interp_gan.provenance_mark import marking
from interp_gan.findings import Finding
from interp_gan.reporting import references as refs
from interp_gan.reporting.claims import key_findings_html, replicated_counts
from interp_gan.reporting.exports import write_paper
from interp_gan.reporting.render import render_block
from interp_gan.reporting.sections import ReportContext, Section, Table, get_section, skipped_block

from interp_gan.util import package_versions

__all__ = ["write_report", "section_title"]

log = logging.getLogger(__name__)

def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _as_dict(findings: dict[str, Finding] | Iterable[Finding]) -> dict[str, Finding]:
    if isinstance(findings, dict):
        return dict(findings)
    out: dict[str, Finding] = {}
    for f in findings:
        if f.analysis in out:
            raise ValueError(f"two findings for analysis {f.analysis!r}; pass one per analysis "
                             "(or a dict with distinct keys)")
        out[f.analysis] = f
    return out


def section_title(key: str, f: Finding) -> str:
    """The title the analysis registered (carried by its Finding), else its name."""
    return f.section.get("title") or key.replace("_", " ").capitalize()


def _ordered(findings: dict[str, Finding]) -> list[str]:
    """Sections in the order their analyses registered (``order``), then by name."""
    return sorted(findings, key=lambda k: (findings[k].section.get("order", 100), k))


def _first(keys: tuple[str, ...], *sources: dict) -> Any:
    for src in sources:
        for k in keys:
            if isinstance(src, dict) and src.get(k) not in (None, ""):
                return src[k]
    return None


# --- sections -----------------------------------------------------------------------------------
def _default_section(key: str, f: Finding) -> Section:
    """For an analysis without a registered section: its notes and tables."""
    blocks: list[Any] = ["<p class=\"muted\">No report section is registered for this analysis; "
                         "its tables are shown as they are.</p>"]
    blocks += [Table(df, caption=name) for name, df in f.tables.items()]
    return Section(section_title(key, f), blocks)


def _build_section(key: str, f: Finding, ctx: ReportContext, strict: bool) -> tuple[Section, list[str], str]:
    """-> (section, rendered blocks, status); status is 'ok' | 'default' | 'skipped' | 'error: ...'."""
    title = section_title(key, f)
    if f.skipped:
        return Section(title), [skipped_block(f.skipped)], "skipped"
    fn = get_section(f.analysis) or get_section(key)
    if fn is None:
        sec = _default_section(key, f)
        return sec, [render_block(b) for b in sec.blocks], "default"
    try:
        sec = fn(f, ctx)
        if not isinstance(sec, Section):
            raise TypeError(f"section function for {key!r} returned {type(sec).__name__}, expected Section")
        return sec, [render_block(b) for b in sec.blocks], "ok"   # render here so a bad block is caught
    except Exception as e:
        if strict:
            raise
        log.exception("report section %r failed", key)
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:])
        return Section(title), [f'<div class="error"><b>This section failed to build:</b> '
                                f'{html.escape(type(e).__name__)}: {html.escape(str(e))}'
                                f"<pre>{html.escape(tb)}</pre></div>"], f"error: {type(e).__name__}: {e}"


def _table_captions(f: Finding, sec: Section) -> dict[str, str]:
    """{table name: the caption of the section's Table that shows it}, so that paper/<table>.tex says
    what the table is ("Channel dissection: dissection control" said only its file name). A Table
    shows a finding table when it is that frame, or has its rows and a subset of its columns (the
    section picked and ordered columns); a Table that matches two of them, or none, gives nothing."""
    out: dict[str, str] = {}
    for b in sec.blocks:
        if not isinstance(b, Table) or not b.caption:
            continue
        same = [n for n, df in f.tables.items() if df is b.df]
        like = same or [n for n, df in f.tables.items() if len(df) == len(b.df) and len(b.df.columns)
                        and set(map(str, b.df.columns)) <= set(map(str, df.columns))]
        if len(like) == 1 and like[0] not in out:
            out[like[0]] = b.caption.rstrip(".")
    return out


def _finding_footer(key: str, f: Finding, csv_paths: dict[tuple[str, str], str], cites: list[str],
                    body: str = "") -> str:
    """Citations, the notes the section ``body`` did not already print (a note is said once), data
    links and parameters."""
    parts = [refs.citations_html(cites)]
    notes = [n for n in f.notes if not (n.strip() and html.escape(n) in body)]
    if notes:
        above = len(f.notes) - len(notes)
        more = f"; {above} more shown above" if above else ""
        parts.append(f'<details class="notes"><summary>Notes from the analysis ({len(notes)}{more})</summary><ul>'
                     + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul></details>")
    links = [f'<a href="{html.escape(csv_paths[key, t])}">{html.escape(Path(csv_paths[key, t]).name)}</a>'
             for t in f.tables]
    if links:
        parts.append(f'<div class="files">Data: {" · ".join(links)} · '
                     f'<a href="findings/{html.escape(key)}/finding.json">finding.json</a></div>')
    if f.params:
        parts.append(f'<div class="params">Parameters: <code>{html.escape(json.dumps(f.params, default=str))}'
                     "</code></div>")
    return "".join(parts)


def _caption(section: str, fig: Any, lead: Any = None, name: str = "") -> str:
    """A figure's caption from its finding: the section, what the figure shows (its title in the
    report, which the print version drops), and for a section's first figure its claim and numbers."""
    title = getattr(fig, "title", "") if not hasattr(fig, "layout") else (fig.layout.title.text or "")
    title = re.sub(r"<[^>]+>", " ", str(title or "")).strip().rstrip(".") or name.replace("_", " ")
    text = f"{section}" + (f": {title}." if title else ".")
    if lead is not None:
        verdict = "" if lead.survives else " (did not survive its control)"
        text += f" {lead.text}{verdict}: {lead.numbers()}."
    return text


def _subentries(body: str, anchor: str) -> tuple[str, list[tuple[str, str]]]:
    """Give every ``<h3>`` of a section an id; -> (body, [(id, text)]) for the sidebar."""
    subs: list[tuple[str, str]] = []

    def add(m: re.Match) -> str:
        text = re.sub(r"<[^>]+>", "", m.group(1))
        sid = f"{anchor}--{_slug(text)}"
        while any(sid == x for x, _ in subs):
            sid += "-2"
        subs.append((sid, html.unescape(text)))
        return f'<h3 id="{sid}">{m.group(1)}</h3>'
    return re.sub(r"<h3>(.*?)</h3>", add, body), subs


# --- files --------------------------------------------------------------------------------------
def _write_data(out: Path, findings: dict[str, Finding]) -> dict[tuple[str, str], str]:
    """findings.json, findings/<table>.csv, findings/<analysis>/; -> (analysis, table) -> CSV path."""
    fdir = out / "findings"
    fdir.mkdir(parents=True, exist_ok=True)
    (out / "findings.json").write_text(json.dumps({k: f.to_dict() for k, f in findings.items()}, indent=1))
    csv_paths: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for key in _ordered(findings):            # a fixed order: the same file names on every re-render
        f = findings[key]
        f.save(fdir / key)
        for name, df in f.tables.items():
            fname = name if name not in used else f"{key}_{name}"   # table names should be unique
            if fname != name:
                log.warning("table name %r is used by two analyses; writing %s.csv", name, fname)
            used.add(fname)
            df.to_csv(fdir / f"{fname}.csv", index=False)
            csv_paths[key, name] = f"findings/{fname}.csv"
    return csv_paths


def _write_plotly_js(out: Path) -> None:
    from plotly.offline import get_plotlyjs
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    js = get_plotlyjs()
    target = assets / "plotly.min.js"
    if not target.is_file() or target.stat().st_size != len(js.encode()):
        target.write_text(js, encoding="utf-8")


def _page(ctx: ReportContext, header: dict[str, Any], nav: list[tuple[str, str, str, list]], body: str) -> str:
    def item(a: str, t: str, s: str, subs: list) -> str:
        badge = f" <span class=badge-{s}>{s}</span>" if s else ""
        sub = ("<ol>" + "".join(f'<li><a href="#{x}">{html.escape(y)}</a></li>' for x, y in subs) + "</ol>"
               if subs else "")
        return f'<li><a href="#{a}">{html.escape(t)}</a>{badge}{sub}</li>'
    nav_html = "".join(item(*n) for n in nav)
    facts = " · ".join(f"<span>{html.escape(k)}</span> <code>{html.escape(str(v))}</code>"
                       for k, v in header.items() if v not in (None, ""))
    analysed = analysed_line(ctx.meta, ctx.style_names)   # what was analysed, said on the first screen
    analysed = f'<p class="analysed">{html.escape(analysed)}</p>' if analysed else ""
    edit_line = describe_edits(ctx.meta)     # a model edited with `interp-gan edit` (interp_gan.edits)
    edited = f'<p class="edited"><strong>{html.escape(edit_line)}</strong></p>' if edit_line else ""
    edited += input_notes_html(ctx.meta)      # skipped images, data and model notes: said once, here
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(ctx.name)} — interp_gan report</title>
<style>{_CSS}</style>
<script src="assets/plotly.min.js"></script>
</head><body>
<nav class="sidebar"><div class="brand">interp_gan</div><div class="rname">{html.escape(ctx.name)}</div>
<ol>{nav_html}</ol></nav>
<main>
<header><h1>{html.escape(ctx.name)}</h1>{analysed}<div class="facts">{facts}</div>{edited}</header>
{body}
<footer>Generated by interp_gan. Everything on this page is local: open it offline.</footer>
</main>
<script>{_JS}</script></body></html>
"""


def write_report(out_dir: str | Path, findings: dict[str, Finding] | list[Finding], ctx: ReportContext,
                 *, strict: bool = False, static_figures: bool = True, paper: bool = True) -> Path:
    """Write the report directory ``out_dir`` (see the module docstring); returns ``out_dir``.

    Reads from ``ctx.meta`` (all optional): ``sha256``/``checkpoint_sha256``, ``data_fingerprint``,
    ``config``/``pipeline``, ``seed``, ``checkpoint``/``checkpoint_path``, ``style_names``; missing
    ones are looked up in the findings' provenance. ``manifest["meta"]`` keeps ``ctx.meta`` (less
    the metrics rows) so ``interp-gan report`` can re-render. ``strict=True`` re-raises a section's exception (tests use it);
    ``static_figures=False`` skips the SVG/PDF exports (they need Chromium); ``paper=False``
    skips ``paper/`` altogether.
    """
    sha = next((ctx.meta.get(k) for k in ("sha256", "checkpoint_sha256") if ctx.meta.get(k)), None)
    with marking(sha):      # every image written below carries the provenance mark (interp_gan.provenance_mark)
        return _write_report(out_dir, findings, ctx, strict=strict, static_figures=static_figures, paper=paper)


def _write_report(out_dir: str | Path, findings: dict[str, Finding] | list[Finding], ctx: ReportContext,
                  *, strict: bool = False, static_figures: bool = True, paper: bool = True) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    found = _as_dict(findings)
    for k, f in found.items():
        if not isinstance(f, Finding):
            raise TypeError(f"findings[{k!r}] is a {type(f).__name__}, expected a Finding")
    if not ctx.findings:
        ctx.findings = dict(found)
    if not ctx.style_names and ctx.meta.get("style_names"):
        ctx.style_names = list(ctx.meta["style_names"])

    _write_plotly_js(out)
    csv_paths = _write_data(out, found)

    nav: list[tuple[str, str, str, list]] = []
    bodies: list[str] = []
    claims: list[list[Any]] = []
    captions: dict[str, str] = {}
    teaser = ""
    statuses: dict[str, str] = {}
    figures: dict[str, Any] = {}
    cited: list[str] = []
    anchors: set[str] = set()
    shown_captions: dict[tuple[str, str], str] = {}    # (analysis, table) -> the caption the section gave it
    shown_titles: dict[str, str] = {}
    for key in _ordered(found):
        f = found[key]
        sec, rendered, status = _build_section(key, f, ctx, strict)
        statuses[key] = status
        anchor = _slug(sec.anchor or key)
        while anchor in anchors:
            anchor += "-2"
        anchors.add(anchor)
        sec_cites: list[str] = []
        if status in ("ok", "default"):
            sec_cites = list(f.section.get("references", [])) + list(getattr(sec, "references", []) or [])
            cited += sec_cites
            lead = sec.claims[0] if sec.claims else None
            for i, (name, fig) in enumerate({**(sec.paper_grids or {}), **(sec.figures or {})}.items()):
                fname = name if name.startswith(key) else f"{key}_{name}"
                figures[fname] = fig
                captions[fname] = _caption(sec.title, fig, lead if i == 0 else None, name)
            for c in sec.claims or []:
                c.anchor = anchor
                c.analysis = c.analysis or key
            claims.append(list(sec.claims or []))
            shown_captions.update({(key, t): cap for t, cap in _table_captions(f, sec).items()})
            shown_titles[key] = sec.title         # tables and figures of the paper name the section alike
            if sec.teaser is not None and not teaser:
                teaser = render_block(sec.teaser)
        badge = {"skipped": "skipped", "ok": "", "default": ""}.get(status, "error")
        body, subs = _subentries("\n".join(rendered), anchor)
        nav.append((anchor, sec.title, badge, subs))
        footer = _finding_footer(key, f, csv_paths, sec_cites, body) if not f.skipped else ""
        bodies.append(f'<section id="{anchor}" class="status-{badge or "ok"}"><h2>{html.escape(sec.title)}</h2>'
                      + body + footer + "</section>")

    # References: the papers of every section that built; a bad key is reported, never fatal.
    try:
        ref_keys = refs.references_for(cited)
        ref_err = ""
    except LookupError as e:
        if strict:
            raise
        ref_keys = refs.references_for(k for k in cited if k in refs.REFERENCES)
        ref_err = f'<div class="error">{html.escape(str(e))}</div>'
    bib = refs.to_bibtex(ref_keys)
    (out / "references.bib").write_text(bib)
    if ref_keys or ref_err:
        nav.append(("references", "References", "", []))
        bodies.append('<section id="references"><h2>References</h2>'
                      + refs.references_html(ref_keys) + ref_err
                      + '<p class="files"><a href="references.bib">references.bib</a> (BibTeX)</p></section>')

    # Paper exports (LaTeX tables, SVG/PDF figures, BibTeX).
    exports: dict[str, Any] = {"skipped": "paper=False"}
    if paper:
        tables = {}
        for key, f in found.items():
            for name, df in f.tables.items():
                stem = Path(csv_paths[key, name]).stem
                what = shown_captions.get((key, name)) or name.replace("_", " ")
                tables[stem] = (df, f"{shown_titles.get(key) or section_title(key, f)}: {what}")
        exports = write_paper(out / "paper", tables, figures, bib, static_figures=static_figures, captions=captions,
                              title=f"{ctx.name}: interp_gan figures and tables")

    provs = [f.provenance for f in found.values()]
    meta = ctx.meta
    manifest = {
        "name": ctx.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": _first(("checkpoint", "checkpoint_path"), meta, *provs),
        "checkpoint_sha256": _first(("sha256", "checkpoint_sha256"), meta, *provs),
        "data_fingerprint": _first(("data_fingerprint", "fingerprint"), meta, *provs),
        "subject_config": subject_config(meta),     # the options that, with the file, make the subject
        "config": _first(("config", "pipeline"), meta, *provs),
        "seed": _first(("seed",), meta, *provs),
        "style_names": list(ctx.style_names),
        "versions": package_versions(),
        "findings": [{"analysis": k, "skipped": found[k].skipped, "section": statuses[k],
                      "tables": {t: {"csv": csv_paths[k, t], "rows": len(df),
                                     "columns": list(map(str, df.columns))}
                                 for t, df in found[k].tables.items()},
                      "saved": f"findings/{k}"} for k in _ordered(found)],
        "references": ref_keys,
        "exports": exports,
        # what `interp-gan report` needs to re-render (metrics.jsonl rows live in training_metrics.csv)
        "meta": {k: v for k, v in meta.items() if k != "metrics"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))

    header = {"checkpoint": (manifest["checkpoint_sha256"] or "")[:12],
              "data": str(manifest["data_fingerprint"] or "")[:12], "seed": manifest["seed"],
              "styles": len(ctx.style_names) or None, "created": manifest["created"][:10]}
    files_html = ('<p class="files">Full hashes and settings: <a href="manifest.json">manifest.json</a> · data: '
                  '<a href="findings.json">findings.json</a> · <a href="findings/">findings/</a> · paper: '
                  '<a href="paper/">paper/</a> (<code>main.tex</code>, figures, tables)</p>')
    kf = key_findings_html(claims, teaser, replication=replicated_counts(found.get("replication")))
    nav.insert(0, ("key-findings", "Key findings", "", []))
    (out / "index.html").write_text(_page(ctx, header, nav, kf + "\n".join(bodies) + files_html), encoding="utf-8")
    return out


# Inline so the report is one self-contained folder: system fonts only, no web fonts.
_CSS = """
:root { --fg:#1f2430; --muted:#6b7280; --line:#e5e7eb; --bg:#ffffff; --side:#f6f7f9; --accent:#2f5bd3;
        --err:#b42318; --errbg:#fef3f2; --skipbg:#f2f4f7; --skip:#344054; --warnbg:#fffaeb; --warn:#93370d; }
* { box-sizing: border-box; }
html { scroll-behavior: smooth; }
body { margin:0; color:var(--fg); background:var(--bg); font: 15px/1.55 system-ui, -apple-system,
       "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.sidebar { position:fixed; top:0; left:0; bottom:0; width:230px; overflow-y:auto; padding:20px 14px;
           background:var(--side); border-right:1px solid var(--line); }
.sidebar .brand { font-weight:700; letter-spacing:.02em; color:var(--accent); }
.sidebar .rname { color:var(--muted); font-size:13px; margin-bottom:14px; word-break:break-all; }
.sidebar ol { list-style:none; padding:0; margin:0; }
.sidebar li { margin:2px 0; }
.sidebar a { display:inline-block; padding:4px 8px; border-radius:6px; color:var(--fg); text-decoration:none; }
.sidebar a:hover { background:#e8ecf5; }
main { margin-left:230px; padding:28px 40px 60px; max-width:1280px; }
header h1 { margin:0 0 8px; font-size:26px; }
.facts { display:flex; flex-wrap:wrap; gap:6px 18px; font-size:13px; color:var(--muted); }
.facts span { text-transform:uppercase; letter-spacing:.04em; font-size:11px; }
p.analysed { margin:0 0 6px; font-size:14.5px; max-width:none; }
section { border-top:1px solid var(--line); margin-top:28px; padding-top:8px; }
h2 { font-size:21px; margin:14px 0 10px; }
h3 { font-size:16px; margin:18px 0 8px; }
p { max-width:80ch; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
pre { background:#f6f8fa; padding:10px; border-radius:6px; overflow-x:auto; }
a { color:var(--accent); }
.muted { color:var(--muted); font-size:13px; }
.table-wrap { overflow-x:auto; margin:10px 0 16px; }
table { border-collapse:collapse; font-size:13px; font-variant-numeric: tabular-nums; }
caption { caption-side:top; text-align:left; font-weight:600; padding:4px 0 6px; }
th, td { padding:4px 10px; border-bottom:1px solid var(--line); text-align:left; vertical-align:top; }
thead th { border-bottom:2px solid #c9ced6; background:#fafbfc; position:sticky; top:0; }
td.num { text-align:right; white-space:nowrap; }   /* "5.00e-04" on one line, never "5.00e-" / "04" */
tbody tr:hover { background:#f8fafc; }
.figure { margin:8px 0 18px; }
.imagegrid { margin:10px 0 18px; overflow-x:auto; }
.grid-title { font-weight:600; margin-bottom:6px; }
.grid { display:grid; gap:8px; }
.cell { margin:0; text-align:center; }
.cell img { display:block; border-radius:3px; background:#eee; }
.cell img.pixelated { image-rendering: pixelated; }
.cell figcaption { font-size:11.5px; color:var(--muted); max-width:128px; margin:2px auto 0; line-height:1.3;
                   overflow-wrap:anywhere; }   /* wraps, never cut: "svm 0 (lite01->lite03)" keeps its target */
.skip { background:var(--skipbg); color:var(--skip); border-left:4px solid #98a2b3; padding:8px 12px; }
.skip.input-notes { background:var(--warnbg); color:var(--warn); border-left-color:#f79009; }
.error { background:var(--errbg); color:var(--err); border-left:4px solid var(--err); padding:8px 12px; }
.error pre { background:transparent; color:var(--err); margin:6px 0 0; }
.badge-skipped, .badge-error { font-size:10.5px; padding:1px 6px; border-radius:9px; vertical-align:middle; }
.badge-skipped { background:var(--skipbg); color:var(--skip); }
.badge-error { background:var(--errbg); color:var(--err); }
.notes { color:var(--muted); font-size:13px; }
table.matrix td.cell { text-align:center; font-size:12.5px; white-space:nowrap; line-height:1.25; }
table.matrix td.cell .ci { font-size:11px; color:#4b5563; }
table.matrix th { white-space:nowrap; }
table.matrix td.passed { background:#dcfae6; } table.matrix td.failed { background:#fee4e2; }
table.matrix td.inconclusive { background:#fef0c7; } table.matrix td.not-valid, table.matrix td.none { background:#f2f4f7; }
.files, .params { font-size:13px; color:var(--muted); margin:6px 0; }
.params code { white-space:normal; word-break:break-word; }
.refs li { margin:4px 0; font-size:14px; }
.refkey { color:var(--muted); font-family: ui-monospace, Menlo, Consolas, monospace; font-size:12px; }
details summary { cursor:pointer; color:var(--accent); font-size:14px; margin:6px 0; }
details[open] > summary { margin-bottom:8px; }
details.howto, details.notes { margin:8px 0; }
details.howto p { font-size:14px; }
.sidebar ol ol { margin:0 0 4px 12px; font-size:13px; }
.sidebar ol ol a { padding:1px 8px; color:var(--muted); }
.sidebar a.active { background:#e1e8fa; color:var(--accent); font-weight:600; }
.keyfindings { display:flex; gap:24px; align-items:flex-start; border:1px solid #c9d4f2; background:#f7f9fe;
               border-radius:8px; padding:6px 18px 10px; margin-top:14px; }
.keyfindings h2 { margin:8px 0 6px; }
.keyfindings h3.kf-null { font-size:14px; color:var(--muted); margin:10px 0 4px; }
.kf-text { flex:1 1 auto; min-width:0; }
.kf-teaser { flex:0 0 auto; max-width:45%; overflow-x:auto; }
.kf-teaser .imagegrid { margin:6px 0 0; }
.kf-teaser .cell figcaption { max-width:72px; }
ol.claims { margin:0; padding-left:20px; }
li.claim { margin:5px 0; font-size:14px; line-height:1.4; }
li.claim.no { color:#4b5563; }
li.claim.unreplicated { color:#9ca3af; }
.nums { font-variant-numeric:tabular-nums; color:#374151; font-size:13px; background:#eef1f6; padding:0 5px;
        border-radius:4px; }
.verdict { font-size:11.5px; font-weight:600; padding:1px 7px; border-radius:9px; white-space:nowrap; }
.verdict.ok { background:#dcfae6; color:#067647; }
.verdict.no { background:#f2f4f7; color:#475467; }
.evidence { font-size:12.5px; white-space:nowrap; }
.kf-rule { font-size:12px; color:var(--muted); margin:8px 0 0; max-width:none; }
p.result { max-width:none; font-size:15px; background:#fafbfc; border-left:4px solid var(--accent);
           padding:6px 10px; }
.cards-wrap { margin:8px 0 16px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(340px, 1fr)); gap:10px; }
.card { border:1px solid var(--line); border-radius:6px; padding:8px; min-width:0; }
.card img { display:block; max-width:100%; height:auto; }
.card img.pixelated { image-rendering:pixelated; }
.ctitle { font-weight:600; font-size:13.5px; margin-top:4px; overflow-wrap:anywhere; }
.cbadge { font-weight:500; font-size:11px; background:#eef1f6; border-radius:8px; padding:0 6px; margin-left:4px; }
.clines { font-size:12.5px; color:#374151; font-variant-numeric:tabular-nums; }
.cites { font-size:13px; color:var(--muted); margin:8px 0 4px; }
footer { margin-top:40px; color:var(--muted); font-size:12px; }
@media print {
  .sidebar { display:none; }
  details { display:block; } details > summary { display:none; }
  main { margin:0; padding:0; max-width:none; }
  section { break-inside:auto; }
  .figure, .imagegrid, table { break-inside:avoid; }
  a { color:inherit; text-decoration:none; }
}
"""

# Sidebar: highlight the section (and sub-entry) in view; resize plots that open inside <details>.
_JS = """
(function(){
  var links = Array.prototype.slice.call(document.querySelectorAll('.sidebar a[href^="#"]'));
  var byId = {}; links.forEach(function(a){ byId[a.getAttribute('href').slice(1)] = a; });
  var targets = Object.keys(byId).map(function(id){ return document.getElementById(id); }).filter(Boolean);
  function update(){
    var y = window.scrollY + 120, cur = null;
    targets.forEach(function(t){ if (t.getBoundingClientRect().top + window.scrollY <= y) cur = t; });
    if (!cur && targets.length) cur = targets[0];   // above the first section (a tall header): the first
    links.forEach(function(a){ a.classList.remove('active'); });
    if (cur) { var a = byId[cur.id]; a.classList.add('active');
      var top = a.closest('.sidebar > ol > li'); if (top) top.firstElementChild.classList.add('active'); }
  }
  window.addEventListener('scroll', update, {passive: true}); update();
  document.querySelectorAll('details').forEach(function(d){
    d.addEventListener('toggle', function(){ if (d.open) window.dispatchEvent(new Event('resize')); });
  });
})();
"""
