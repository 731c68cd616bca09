import pytest
"""Reporting only reads Findings: rendering a saved report imports neither torch nor captum
(so `interp-gan report` runs where only the report's own packages are installed, and fast)."""
import json
import subprocess
import sys
import textwrap


@pytest.mark.slow
def test_rendering_a_saved_report_imports_no_torch(tmp_path):
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np, pandas as pd
        from interp_gan.findings import Finding
        from interp_gan.reporting import ReportContext, write_report
        units = pd.DataFrame({{"layer": ["a"] * 3, "unit": [0, 1, 2], "concept": ["red", "sky", ""],
                              "iou": [0.3, 0.1, 0.0], "ci_low": [0.2, 0.05, 0.0], "ci_high": [0.4, 0.2, 0.0],
                              "p_value": [0.001, 0.2, 1.0], "q_value": [0.003, 0.3, 1.0]}})
        f = Finding("dissection", tables={{"dissection_units": units}},
                    section={{"title": "Channel dissection", "order": 20, "references": ["bau2019gandissect"]}})
        f.save({str(tmp_path / "saved")!r})
        back = Finding.load({str(tmp_path / "saved")!r})
        write_report({str(tmp_path / "rep")!r}, [back], ReportContext(name="t"), static_figures=False, paper=True)
        print(json.dumps(sorted(m for m in ("torch", "captum", "interp_gan.analyses", "sklearn")
                                if m in sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"rendering a report imported {loaded}"
    assert "Channel dissection" in (tmp_path / "rep" / "index.html").read_text()
