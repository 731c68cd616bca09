"""benchmarks/suite.py: the table it records, the section it replaces, the CPU rehearsal of the GPU
steps. (The measurements themselves are never asserted: they are ratios printed by the scripts.)"""
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def suite():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_suite", BENCH / "suite.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod
    sys.path.remove(str(BENCH))


def _meta(device="cpu", date="2026-12-02"):
    return {"date": date, "device": device, "machine": "test box", "load_before": 1.0, "load_after": 2.0,
            "seconds": 3.0}


def test_goal_met_reads_the_goal_string(suite):
    from _result import goal_met
    assert goal_met(1.4, "<= 2") is True and goal_met(2.1, "<= 2") is False
    assert goal_met(1.9, ">= 1.8") is True and goal_met(1.7, ">= 1.8") is False
    assert goal_met(5.0, None) is None


def test_table_marks_misses_and_steps_that_gave_no_number(suite):
    rows = [{"benchmark": "dissection_cost", "metric": "whole / plain", "value": 2.5, "goal": "<= 2", "met": False,
             "settings": {"size": 128, "step": "d"}},
            {"benchmark": "x", "metric": "FAILED: exit 1 (see x.log)", "value": None, "goal": None, "met": None,
             "settings": {}}]
    text = suite.table(_meta(), rows)
    assert "| dissection_cost | whole / plain | 2.50 | <= 2 | **no** | size 128 |" in text
    assert "| x | FAILED: exit 1 (see x.log) | - |" in text


def test_record_replaces_the_same_dated_device_section_and_keeps_the_others(suite, tmp_path):
    md = tmp_path / "RESULTS.md"
    row = lambda v: [{"benchmark": "b", "metric": "m", "value": v, "goal": None, "met": None, "settings": {}}]  # noqa: E731
    suite.record(md, suite.table(_meta("cpu"), row(1.0)))
    suite.record(md, suite.table(_meta("cuda"), row(2.0)))
    suite.record(md, suite.table(_meta("cpu"), row(3.0)))      # same title: replaced, not appended
    text = md.read_text()
    assert text.startswith("# Benchmark results")
    assert text.count("## 2026-12-02: cpu") == 1 and text.count("## 2026-12-02: cuda") == 1
    assert "| b | m | 3.00 |" in text and "| b | m | 1.00 |" not in text and "| b | m | 2.00 |" in text


def test_rehearsal_keeps_every_option_and_shrinks_the_sizes(suite):
    for name, args, _ in suite.STEPS["cuda"]:
        if args[0].startswith("@"):
            continue
        small = suite._rehearsal(args)
        assert "cuda" not in small and small[0] == args[0]
        flags = {a for a in args if a.startswith("--")}
        assert flags <= set(small), name
        for flag in ("--size", "--n"):
            if flag in small:
                assert int(small[small.index(flag) + 1]) <= 32
