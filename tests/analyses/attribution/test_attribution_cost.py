"""Attribution's cost model: what it times and what it says it cannot know before the run."""
import time

import torch

from interp_gan.analyses.attribution.analysis import _time_forward
from interp_gan.analyses.base import build_analysis
from interp_gan.analyses.cost import estimate_table, measure_unit_costs

from conftest import make_tiny_data, make_tiny_subject


class _ColdBackward(torch.autograd.Function):
    """Identity whose first backward takes 0.3 s (a cold first call), later ones nothing."""
    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        _ColdBackward.calls += 1
        if _ColdBackward.calls == 1:
            time.sleep(0.3)
        return g


def test_a_cold_first_backward_is_not_priced():
    """The forward+backward is timed after a warm-up of its own (before: the first backward was the
    one timed, and a cold one was priced into every step of the shuffled-label training)."""
    _ColdBackward.calls = 0
    x = torch.rand(4, 3, 8, 8)
    t_f, t_fb = _time_forward(lambda v: _ColdBackward.apply(v) * 2, x)
    assert _ColdBackward.calls == 2                      # the warm-up and the timed call
    assert t_fb * len(x) < 0.15 and t_f * len(x) < 0.15


def test_the_shuffled_label_training_is_priced_as_its_worst_case_and_said():
    """Every one of label_steps is priced (the training stops when it fits, which no count knows):
    the estimate says "up to" and how much of it that is; no classifier to retrain, no such note."""
    subject = make_tiny_subject()
    data = make_tiny_data(subject)
    unit = measure_unit_costs(subject, data)
    kw = dict(methods=("saliency",), targets=("classifier",), n_images=2, sanity_images=4, sanity_steps=1)
    with_labels = build_analysis("attribution", label_steps=40, **kw).estimate_cost(subject, data, unit)
    without = build_analysis("attribution", label_steps=0, **kw).estimate_cost(subject, data, unit)
    said = [n for n in with_labels.notes if n.startswith("up to 40 shuffled-label steps per classifier")]
    assert len(said) == 1 and "if all run" in said[0]
    assert not any("shuffled-label" in n for n in without.notes)
    assert with_labels.seconds(unit) > without.seconds(unit)
    line = estimate_table({"attribution": with_labels}, unit).splitlines()[2]
    assert "up to 40 shuffled-label steps" in line
    generated = build_analysis("attribution", label_steps=40, **{**kw, "targets": ("discriminator",)})
    assert not any("shuffled-label" in n for n in generated.estimate_cost(subject, data, unit).notes)


def test_the_estimate_plans_exactly_the_targets_the_run_builds():
    """One planner (``available_targets``) decides every target and skip; ``build_targets`` builds its
    plan. Before, the estimate had its own copy of the decisions and priced the generator and region
    targets of a subject that ignores its content (a StyleGAN), which the run skips."""
    from interp_gan.analyses.attribution.targets import TARGET_NAMES, available_targets, build_targets

    subject = make_tiny_subject()
    data = make_tiny_data(subject)
    for uses_content in (True, False):
        subject.uses_content = uses_content
        plan, plan_skipped = available_targets(subject, data, TARGET_NAMES, n_images=2)
        built, skipped = build_targets(subject, data, TARGET_NAMES, n_images=2)
        assert [(p["name"], p["source"]) for p in plan] == [(t.name, t.source) for t in built]
        assert plan_skipped == skipped
    assert {"generator", "region"} <= {name for name, _ in skipped}      # uses_content False
    unit = measure_unit_costs(subject, data)
    cost = build_analysis("attribution", methods=("saliency",), targets=("generator", "region"), n_images=2,
                          sanity=False).estimate_cost(subject, data, unit)
    assert cost.skip and "ignores its content input" in cost.skip
