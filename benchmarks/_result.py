"""One machine-readable line per measured ratio, so `suite.py` can table a whole run.

Each benchmark prints its own human-readable lines as before and, for each headline number,
one line ``RESULT {json}`` with: the benchmark, what was measured, the value, the goal (a
string such as "<= 2"), whether the goal was met, and the settings that make it comparable.
"""
from __future__ import annotations

import json
import operator

_OPS = {"<=": operator.le, ">=": operator.ge}


def goal_met(value: float, goal: str | None) -> bool | None:
    """``goal_met(1.4, "<= 2") -> True``; None when there is no goal."""
    if not goal:
        return None
    op, bound = goal.split()
    return bool(_OPS[op](value, float(bound)))


def emit(benchmark: str, metric: str, value: float, goal: str | None = None, met: bool | None = None,
         **settings) -> None:
    """Print one RESULT line; ``met`` overrides the goal check when the goal has a second condition."""
    row = {"benchmark": benchmark, "metric": metric, "value": round(float(value), 4), "goal": goal,
           "met": goal_met(value, goal) if met is None else met, "settings": settings}
    print("RESULT " + json.dumps(row), flush=True)
