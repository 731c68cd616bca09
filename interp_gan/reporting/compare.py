"""Compare two saved reports claim by claim: ``interp-gan report --compare A B [--out DIR]``.

    out = compare_reports(Path("reports/run1"), Path("reports/run2"), Path("reports/compare"))
    # -> DIR/index.html (one row per claim: A's verdict and numbers beside B's) and DIR/compare.csv

Each report's saved Findings are reloaded and its sections rebuilt (no model, no torch), so the
claims are made by the same code and rules as in each report's Key findings box. A row says
whether the verdict changed between the runs; it does not test whether the two effects differ
(the runs' intervals are shown side by side, and overlapping intervals do not mean "no change").
"""
from __future__ import annotations

import datetime as _dt
import html
import os
from pathlib import Path
from typing import Any

import pandas as pd

from interp_gan.findings import Finding
from interp_gan.reporting.render import render_block
from interp_gan.reporting.sections import ReportContext, get_section

__all__ = ["compare_reports", "load_report", "report_claims"]


def load_report(d: Path) -> tuple[dict[str, Finding], dict[str, Any]]:
    """(findings by analysis, manifest) of a report directory written by ``write_report``."""
    d = Path(d)
    if not (d / "manifest.json").is_file():
        raise FileNotFoundError(f"{d} is not a report directory (no manifest.json); run `interp-gan analyze` first")
    from interp_gan.guards import check_report_provenance, read_json

    manifest = read_json(d / "manifest.json", "report manifest")
    findings = {p.name: Finding.load(p) for p in sorted((d / "findings").iterdir()) if (p / "finding.json").is_file()}
    check_report_provenance(d, manifest, findings)
    return findings, manifest


def report_claims(findings: dict[str, Finding], manifest: dict[str, Any]) -> tuple[list[dict], Any]:
    """Every section's claims as rows (section, order, rank, claim fields), and the overview's teaser."""
    ctx = ReportContext(name=manifest.get("name", ""), meta=manifest.get("meta", {}), findings=findings,
                        style_names=manifest.get("style_names", []))
    rows, teaser = [], None
    for key in sorted(findings, key=lambda k: (findings[k].section.get("order", 100), k)):
        f = findings[key]
        fn = get_section(f.analysis) or get_section(key)
        if f.skipped or fn is None:
            continue
        try:
            sec = fn(f, ctx)
        except Exception as e:  # noqa: BLE001 - one broken section must not hide the others' claims
            rows.append({"section": key, "title": key, "order": 100, "rank": 0,
                         "text": f"section failed to build: {type(e).__name__}: {e}", "survives": False})
            continue
        teaser = teaser if teaser is not None else sec.teaser
        for i, c in enumerate(sorted(sec.claims or [], key=lambda c: c.priority)):
            rows.append({"section": key, "title": sec.title, "order": f.section.get("order", 100), "rank": i,
                         "text": c.text, "effect": c.effect, "ci": c.ci, "baseline": c.baseline,
                         "verdict": c.verdict, "survives": bool(c.survives), "rule": c.rule})
    return rows, teaser


def _cell(r: dict | None) -> str:
    if r is None:
        return '<td class="muted">not in this run</td>'
    cls, mark = ("ok", "✓") if r.get("survives") else ("no", "✗")
    nums = " · ".join(x for x in (f"{r.get('effect', '')} {r.get('ci', '')}".strip(),
                                  f"vs {r['baseline']}" if r.get("baseline") else "") if x)
    return (f'<td><span class="verdict {cls}">{mark} {html.escape(str(r.get("verdict", "")))}</span> '
            f'{html.escape(r["text"])}<div class="nums">{html.escape(nums)}</div></td>')


def compare_reports(a: Path, b: Path, out: Path) -> Path:
    """Write ``out/index.html`` and ``out/compare.csv`` comparing the claims of reports ``a`` and ``b``."""
    a, b, out = Path(a), Path(b), Path(out)
    fa, ma = load_report(a)
    fb, mb = load_report(b)
    ra, ta = report_claims(fa, ma)
    rb, tb = report_claims(fb, mb)
    key = lambda r: (r["section"], r["rank"])  # noqa: E731
    ia, ib = {key(r): r for r in ra}, {key(r): r for r in rb}
    keys = sorted(set(ia) | set(ib), key=lambda k: ((ia.get(k) or ib.get(k))["order"], k))
    out.mkdir(parents=True, exist_ok=True)
    rows, table = [], []
    for k in keys:
        x, y = ia.get(k), ib.get(k)
        changed = x is None or y is None or x["survives"] != y["survives"]
        title = (x or y)["title"]
        rows.append(f'<tr class="{"changed" if changed else ""}"><th>{html.escape(title)}</th>{_cell(x)}{_cell(y)}'
                    f'<td>{"verdict changed" if changed else "same verdict"}</td></tr>')
        for run, r in (("A", x), ("B", y)):
            if r is not None:
                table.append({"run": run, "section": k[0], "rank": k[1], **{c: r.get(c, "") for c in
                              ("text", "effect", "ci", "baseline", "verdict", "survives")}})
    pd.DataFrame(table).to_csv(out / "compare.csv", index=False)

    def facts(m: dict, d: Path) -> str:
        link = os.path.relpath(d / "index.html", out)
        return (f'<a href="{html.escape(link)}">{html.escape(m.get("name") or d.name)}</a> · checkpoint '
                f'<code>{html.escape(str(m.get("checkpoint_sha256") or "")[:12])}</code> · data '
                f'<code>{html.escape(str(m.get("data_fingerprint") or "")[:12])}</code> · seed '
                f'{html.escape(str(m.get("seed")))}')
    teasers = "".join(f'<div><div class="muted">{lab}</div>{render_block(t)}</div>'
                      for lab, t in (("A", ta), ("B", tb)) if t is not None)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Compare {html.escape(a.name)} and {html.escape(b.name)}</title>
<style>{_CSS}</style></head><body><main>
<h1>Compare: {html.escape(a.name)} (A) and {html.escape(b.name)} (B)</h1>
<p>A: {facts(ma, a)}<br>B: {facts(mb, b)}</p>
<div class="teasers">{teasers}</div>
<table><thead><tr><th>section</th><th>A</th><th>B</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>
<p class="muted">Each claim is rebuilt from the run's saved findings by the same rules as its report's Key findings.
"Verdict changed" compares the verdicts only; it is not a test that the effects differ between the runs.
Data: <a href="compare.csv">compare.csv</a>. Written {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}.</p>
</main></body></html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")
    return out


_CSS = """
body { margin:0; color:#1f2430; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
main { padding:24px 36px; max-width:1500px; }
table { border-collapse:collapse; font-size:13.5px; }
th, td { padding:6px 10px; border-bottom:1px solid #e5e7eb; text-align:left; vertical-align:top; }
tr.changed td:last-child { color:#b42318; font-weight:600; }
.muted { color:#6b7280; font-size:13px; }
.nums { color:#374151; font-size:12.5px; margin-top:2px; }
.verdict { font-size:11.5px; font-weight:600; padding:1px 7px; border-radius:9px; white-space:nowrap; }
.verdict.ok { background:#dcfae6; color:#067647; } .verdict.no { background:#f2f4f7; color:#475467; }
.teasers { display:flex; gap:30px; margin:10px 0 18px; }
.grid { display:grid; gap:6px; } .cell { margin:0; text-align:center; } .cell img { display:block; }
.cell img.pixelated { image-rendering:pixelated; } .cell figcaption { font-size:11px; color:#6b7280; }
.grid-title { font-weight:600; font-size:13px; }
code { font-size:12.5px; }
"""
