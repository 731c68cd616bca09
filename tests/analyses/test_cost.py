"""The cost model (analyses/cost.py): every analysis counts the generator passes it will make, a
budget cuts sizes in a fixed order and says so, the pipeline prints the estimate and compares it
with the measured time."""
import dataclasses
import math
import time

import numpy as np
import pytest
import torch

import interp_gan.analyses  # noqa: F401  (registers every analysis)
from interp_gan.analyses.base import AnalysisData, build_analysis, get_analysis, list_analyses
from interp_gan.analyses.cost import (Cost, Progress, UnitCosts, comparison_table, count_generator, evenly,
                                      halve_to, measure_unit_costs, share_budget, size_to_budget)
from interp_gan.models.cyclegan import CycleGANGenerator
from interp_gan.subject.protocol import Subject

from conftest import make_tiny_data, make_tiny_subject


def test_size_to_budget_cuts_in_order_down_to_floors_and_says_so():
    secs = lambda sz: sz["a"] * 1.0 + sz["b"] * 10.0  # noqa: E731
    cuts = [("a", halve_to(4)), ("b", halve_to(2))]
    same, notes = size_to_budget({"a": 64, "b": 8}, secs, 1000, cuts)
    assert same == {"a": 64, "b": 8} and notes == []                     # fits: nothing cut, nothing said
    sized, notes = size_to_budget({"a": 64, "b": 8}, secs, 90, cuts)
    assert sized == {"a": 8, "b": 8}                                      # a first, only as far as needed
    sized, notes = size_to_budget({"a": 64, "b": 8}, secs, 20, cuts)
    assert sized == {"a": 4, "b": 2} and len(notes) == 1                  # both at their floors, still over
    assert "a 64 -> 4" in notes[0] and "b 8 -> 2" in notes[0] and "still over the budget" in notes[0]
    # a size above what is used costs nothing: it is stepped on until the estimate falls
    used = lambda sz: min(sz["n"], 100) * 1.0  # noqa: E731
    sized, _ = size_to_budget({"n": 1000}, used, 60, [("n", halve_to(10))])
    assert sized["n"] == 31 and used(sized) <= 60


def test_share_budget_gives_the_cheap_what_they_need_and_splits_the_rest():
    costs = {"fixed": 100.0, "a": 10.0, "b": 500.0, "c": 900.0}
    got = share_budget(400.0, costs, {"a", "b", "c"})
    assert got["a"] == 10.0 and got["b"] == pytest.approx(145.0) and got["c"] == pytest.approx(145.0)
    assert share_budget(50.0, costs, {"a"}) == {"a": 0.0}                # the fixed ones already take it all


def test_evenly_keeps_first_and_last():
    assert evenly(list("abcdefghi"), 3) == ["a", "e", "i"]
    assert evenly([1, 2], 5) == [1, 2]


@pytest.mark.parametrize("name", list_analyses())
def test_estimated_generator_passes_match_the_counted_ones(name):
    """Each analysis' count of images through the generator (its ``fast`` settings, tiny model)
    against a forward pre-hook's count of what ``run`` really sent through it."""
    subject = make_tiny_subject()
    data = make_tiny_data(subject)
    unit = dataclasses.replace(measure_unit_costs(subject, data), order=())   # stopped forwards count whole
    analysis = build_analysis(name, **get_analysis(name).fast)
    est = analysis.estimate_cost(subject, data, unit)
    assert not est.skip
    with count_generator(subject) as n:
        analysis.run(subject, data)
    counted = n["forwards"] + n["grads"]
    assert counted > 0
    assert abs(est.images() - counted) <= 0.1 * counted + 2, (name, est, n)


def _count_images(module, counts: dict, key: str):
    def pre(mod, args):
        counts[key] = counts.get(key, 0) + int(args[0].shape[0])
        counts[key + "_calls"] = counts.get(key + "_calls", 0) + 1
    return module.register_forward_pre_hook(pre)


# attribution prices its image models per target (a scorer's pass included), artifacts times its judges itself
_JUDGES_PRICED_ELSEWHERE = {"attribution", "artifact_units"}


@pytest.mark.parametrize("name", [n for n in list_analyses() if n not in _JUDGES_PRICED_ELSEWHERE])
def test_estimated_judge_passes_match_the_counted_ones(name):
    """The generated images an analysis sends through the two style classifiers (``classified``:
    images through both), the feature net's Grams (``grammed``) and the concept masks
    (``concepts``), and its small judged passes (``passes``: classifier calls, for the analyses
    that count them), against hooks' counts of what ``run`` sent: on a small generator the judges
    cost as much as the generator itself, and on a many-style model so do the calls."""
    subject = make_tiny_subject()
    data = make_tiny_data(subject)
    unit = dataclasses.replace(measure_unit_costs(subject, data), order=())
    assert unit.classify_s > 0 and unit.gram_s > 0
    analysis = build_analysis(name, **get_analysis(name).fast)
    est = analysis.estimate_cost(subject, data, unit)
    n: dict = {}
    f = subject.feature_net
    real_grams = f.grams
    hooks = [_count_images(subject.classifier, n, "rgb"), _count_images(subject.texture_classifier, n, "tex")]

    def grams(x, *a, **k):
        n["grams"] = n.get("grams", 0) + int(x.shape[0])
        return real_grams(x, *a, **k)
    f.grams = grams
    import interp_gan.analyses.units.concepts as concepts
    real_masks = concepts.concept_masks

    def masks(x, *a, **k):
        n["concepts"] = n.get("concepts", 0) + int(x.shape[0])
        return real_masks(x, *a, **k)
    concepts.concept_masks = masks
    try:
        analysis.run(subject, data)
    finally:
        for h in hooks:
            h.remove()
        del f.grams
        concepts.concept_masks = real_masks
    judged = (n.get("rgb", 0) + n.get("tex", 0)) / 2          # classify_s is priced for both classifiers
    real = len(data.style_images)                              # Gram references of the real style images
    grammed = max(0, n.get("grams", 0) - (real if est.grammed else 0))
    assert abs(est.classified - judged) <= 0.15 * judged + 2, (name, est.classified, n)
    assert abs(est.grammed - grammed) <= 0.15 * grammed + 2, (name, est.grammed, n)
    if name in ("ablation", "style_edits"):     # a pass per style and set: their calls are counted
        assert est.passes > 0 and abs(est.passes - n["rgb_calls"]) <= 0.15 * n["rgb_calls"] + 2, (name, est.passes, n)
    if name != "dissection":                    # dissection's masks are other_s (its segmenter, its sizes)
        concept_images = max(0, n.get("concepts", 0) - (1 if est.concepts else 0))   # ablation's 1-image probe
        assert abs(est.concepts - concept_images) <= 0.15 * concept_images + 2, (name, est.concepts, n)


def test_count_generator_counts_images_and_removes_its_hook():
    subject = make_tiny_subject()
    data = make_tiny_data(subject)
    with count_generator(subject) as n:
        with torch.no_grad():
            subject.generate(data.content[:5], data.style_ids[:5], data.z[:5])
        x = data.content[:3].clone().requires_grad_(True)
        subject.generate(x, data.style_ids[:3], data.z[:3]).sum().backward()
    assert n == {"forwards": 5, "grads": 3}
    assert not subject.generator._forward_pre_hooks


def test_progress_is_quiet_off_a_terminal_and_counts_on_one(capsys):
    bar = Progress("x", 10)                    # pytest's stderr is not a terminal
    bar({"forwards": 4, "grads": 0})
    bar.close()
    assert bar.bar is None and capsys.readouterr().err == ""
    bar = Progress("x", 10, enabled=True)
    bar({"forwards": 4, "grads": 2})
    assert bar.bar.n == 6
    bar({"forwards": 14, "grads": 2})          # more than estimated: the bar grows
    assert bar.bar.n == 16 and bar.bar.total == 16
    bar.close()


def test_comparison_table_ratios():
    text = comparison_table({"a": 10.0, "b": 0.0}, {"a": 20.0, "b": 1.0})
    assert "2.00" in text.splitlines()[1] and text.splitlines()[-1].split()[-1] == "2.10"


def _budgeted_attribution(budget_s, **kw):
    kw = {"n_images": 4, **kw}
    return build_analysis("attribution", methods=("ig", "saliency", "occlusion"), targets=("region",),
                          n_steps=32, sanity_images=8, sanity_steps=3, budget_s=budget_s, **kw)


def _cyclegan(ngf=4, n_blocks=2):
    torch.manual_seed(0)
    return Subject.from_module(CycleGANGenerator(ngf=ngf, n_blocks=n_blocks).eval(), ["translated"])


def test_attribution_budget_cuts_are_in_the_notes_and_params():
    """A budget the configured sizes cannot meet: sanity cascade, IG steps, occlusion patches, ...
    are cut, each cut is named in a note (the report prints notes) and in params, and the maps and
    sanity rows really are at the cut sizes. The unit costs are set slow, so the cut does not
    depend on this machine's speed."""
    subject = _cyclegan()
    g = torch.Generator().manual_seed(0)
    data = AnalysisData(torch.rand(8, 3, 32, 32, generator=g) * 2 - 1, torch.zeros(8, dtype=torch.long))
    unit = dataclasses.replace(measure_unit_costs(subject, data), forward_s=0.01, grad_s=0.03)
    data.extra["unit_costs"] = unit
    full = _budgeted_attribution(None).estimate_cost(subject, data, unit).seconds(unit)
    f = _budgeted_attribution(full / 8).run(subject, data)
    budget = [n for n in f.notes if n.startswith("budget")]
    assert len(budget) == 1 and "sanity_steps 3 -> 1" in budget[0] and "n_steps 32 -> 16" in budget[0]
    cut = f.params["sized_to_budget"]
    assert cut["sanity_steps"] == 1 and cut["n_steps"] == 16
    assert set(f.tables["attribution_completeness"]["n_steps"]) == {16}
    assert set(f.tables["attribution_sanity"]["randomized"]) == {"all"}   # one cascade step: straight to all
    n_sanity = f.tables["attribution_sanity"]["n_images"].iloc[0]
    assert n_sanity == cut.get("sanity_images", 8)
    assert f.tables["attribution_maps"].groupby("method").size().max() == cut.get("n_images", 4)
    # a budget that fits cuts nothing and says nothing
    f2 = _budgeted_attribution(full * 10, n_images=2).run(subject, data)
    assert not any(n.startswith("budget") for n in f2.notes) and "sized_to_budget" not in f2.params


def test_attribution_unit_sample_is_said_and_correlates_the_sampled_units_only(tiny_subject, tiny_data):
    f = build_analysis("attribution", methods=(), targets=("units",), n_images=4, n_steps=4, sanity=False,
                       max_units=5).run(tiny_subject, tiny_data)
    units = f.tables["attribution_units"]
    assert units["ablation_effect"].notna().groupby([units["method"], units["style"]]).sum().eq(5).all()
    agree = f.tables["attribution_unit_agreement"]
    assert (agree["n_units"] + agree["n_inactive"] == 5).all()
    assert any("5 of" in n and "random sample" in n for n in f.notes)


def test_dissection_budget_dissects_an_even_sample_of_layers():
    subject = _cyclegan(n_blocks=3)
    g = torch.Generator().manual_seed(0)
    data = AnalysisData(torch.rand(16, 3, 32, 32, generator=g) * 2 - 1, torch.zeros(16, dtype=torch.long))
    unit = dataclasses.replace(measure_unit_costs(subject, data), forward_s=0.01, grad_s=0.03)
    data.extra["unit_costs"] = unit
    a = build_analysis("dissection", n_boot=10, n_perm=10)
    every = a.estimate_cost(subject, data, unit).seconds(unit)
    f = build_analysis("dissection", n_boot=10, n_perm=10, budget_s=every / 3).run(subject, data)
    layers = list(dict.fromkeys(f.tables["dissection_units"]["layer"]))
    all_convs = [n for n, m in subject.generator.named_modules() if isinstance(m, (torch.nn.Conv2d,
                                                                                  torch.nn.ConvTranspose2d))]
    assert 3 <= len(layers) < len(all_convs) and layers[0] == all_convs[0] and layers[-1] == all_convs[-1]
    assert any(n.startswith("budget of dissection") for n in f.notes)
    assert any(", ".join(layers) in n for n in f.notes)


def test_directions_without_a_classifier_drops_voynov_last_and_says_why():
    subject = _cyclegan()
    g = torch.Generator().manual_seed(0)
    data = AnalysisData(torch.rand(16, 3, 32, 32, generator=g) * 2 - 1, torch.zeros(16, dtype=torch.long))
    unit = dataclasses.replace(measure_unit_costs(subject, data), forward_s=0.01, grad_s=0.03)
    data.extra["unit_costs"] = unit
    kw = dict(methods=("pca", "random", "voynov"), n_random=19, n_images=8, n_directions=2, voynov_steps=200)
    est = build_analysis("directions", **kw).estimate_cost(subject, data, unit).seconds(unit)
    f = build_analysis("directions", **kw, budget_s=est / 50).run(subject, data)
    df = f.tables["directions"]
    assert "voynov" not in set(df["method"]) and any(n.startswith("voynov skipped") for n in f.notes)
    assert (df["method"] == "random").sum() == 4                          # no classifier: floor 4, not 19
    assert f.params["sized_to_budget"]["n_random"] == 4 and f.params["n_random"] == 19


def test_unit_costs_see_the_layers_and_their_order():
    subject = _cyclegan()
    data = AnalysisData(torch.rand(4, 3, 32, 32) * 2 - 1, torch.zeros(4, dtype=torch.long))
    unit = measure_unit_costs(subject, data)
    assert unit.forward_s > 0 and unit.grad_s > 0 and unit.region_s > 0 and unit.null_s > 0
    assert unit.channels("model.1") == 4 and unit.pixels("model.1") == 32 * 32
    assert unit.order[0] == "model.1" and unit.fraction(unit.order[-1]) == 1.0
    assert 0 < unit.fraction("model.10") < 1                              # a block: the part of G before it


def test_pipeline_estimate_is_printed_and_counts_the_generator_images_it_will_run(tmp_path, capsys):
    """The tiny model's whole run against its printed estimate. The estimate's model (generator
    images per analysis) must match what the run counted; seconds are not asserted (a test is no
    benchmark: under load the ratio swings; benchmarks/full_pipeline_cost.py measures it)."""
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import analysis_data, plan_analyses, run_analyses
    subject = make_tiny_subject()
    cfg = PipelineConfig.from_dict({"name": "t", "n_images": 16, "image_size": 32, "batch_size": 8, "device": "cpu",
                                    "analyses": {"overview": {"n_images": 2},
                                                 "dissection": {"layers": ["blocks.*.conv2"], "n_boot": 20,
                                                                "n_perm": 20},
                                                 "style_units": {"n_boot": 20, "n_perm": 50},
                                                 "directions": {"methods": ["pca", "random"], "n_random": 4,
                                                                "n_images": 8, "n_boot": 20}}})
    data = make_tiny_data(subject)
    plan = plan_analyses(subject, data, cfg)
    t0 = time.perf_counter()
    findings, failed = run_analyses(subject, data, cfg, plan)
    actual = time.perf_counter() - t0
    assert failed == [], plan.table()
    for name, f in findings.items():
        planned, ran = plan.costs[name].forwards, f.provenance["generator_images"]["forwards"]
        assert ran == pytest.approx(planned, rel=0.1), (name, planned, ran, actual, plan.table())
    out = capsys.readouterr().out
    assert "overview ... (estimated" in out and "dissection done in" in out
    assert all("estimated_seconds" in f.provenance and f.provenance["generator_images"] for f in findings.values())
    assert "total" in plan.table() and "ms per image forward" in plan.table()


def test_ablation_budget_cuts_random_sets_to_19_first(tiny_subject, tiny_data):
    unit = dataclasses.replace(measure_unit_costs(tiny_subject, tiny_data), forward_s=0.01, grad_s=0.03)
    tiny_data.extra["unit_costs"] = unit
    kw = dict(layer="blocks.1.conv2", ks=(1, 2, 3, 4), n_random=40, n_boot=20, n_perm=50)
    full = build_analysis("ablation", **kw).estimate_cost(tiny_subject, tiny_data, unit).seconds(unit)
    f = build_analysis("ablation", **kw, budget_s=full * 0.4).run(tiny_subject, tiny_data)
    df = f.tables["ablation"]
    assert set(df.loc[df["baseline"] == "random", "n_sets"]) == {19}
    assert any(n.startswith("budget of ablation") and "n_random 40 -> 19" in n for n in f.notes)
    assert any("among 19 baseline sets" in n for n in f.notes)


def test_replication_is_priced_with_the_planned_base_parameters(tiny_subject, tiny_data):
    """Replication re-runs earlier findings with the parameters they were made with. Priced with
    its own defaults instead, a budget-sized pipeline on a CycleGAN printed 46 min for replication
    and took 1 min 43 s. With the plan (``data.extra["planned"]``): the sized parameters, and no
    extra base run for an analysis the pipeline makes anyway."""
    unit = dataclasses.replace(measure_unit_costs(tiny_subject, tiny_data), forward_s=0.01, grad_s=0.03)
    rep = build_analysis("replication", analyses=["dissection"])
    alone = rep.estimate_cost(tiny_subject, tiny_data, unit).forwards
    small = {"layers": ["blocks.1.conv2"], "control": False}
    one = build_analysis("dissection", **small).estimate_cost(tiny_subject, tiny_data, unit).forwards
    tiny_data.extra["planned"] = {"dissection": small}
    planned = rep.estimate_cost(tiny_subject, tiny_data, unit).forwards
    assert planned == one * rep._RERUNS["dissection"](rep) and planned < alone


def test_ablation_budget_samples_set_sizes_below_the_layers_unit_count(tiny_subject, tiny_data):
    """multistyle26: ks (1, 2, ..., 64) cut to two became (1, 64); 64 is every unit of a 32-unit layer,
    which has no random baseline, and the key finding read "not compared with random units"."""
    unit = dataclasses.replace(measure_unit_costs(tiny_subject, tiny_data), forward_s=0.01, grad_s=0.03)
    tiny_data.extra["unit_costs"] = unit
    n_units = unit.channels("blocks.1.conv2")
    kw = dict(layer="blocks.1.conv2", ks=(1, 2, 4, 64), n_random=19, n_boot=20, n_perm=50)
    full = build_analysis("ablation", **kw).estimate_cost(tiny_subject, tiny_data, unit).seconds(unit)
    f = build_analysis("ablation", **kw, budget_s=full * 0.55).run(tiny_subject, tiny_data)
    assert any(n == "set sizes ablated (an even sample, to fit budget_s): [1, 4]" for n in f.notes), f.notes
    df = f.tables["ablation"]
    assert set(df["k"]) == {1, 4} and 4 < n_units and df.loc[df["baseline"] == "top", "p_random"].notna().all()


def test_ablation_budget_ablates_an_even_sample_of_target_styles_last():
    """A 26-style network: at n_random 19 and 2 set sizes ablation still cost 3.5 min on a CPU, over
    any share of a 7-min budget. The last cut is an even sample of the target styles (floor 4),
    named in a note; the table has rows for those styles only."""
    subject = make_tiny_subject(num_styles=8)
    data = make_tiny_data(subject, n=64, size=16)
    unit = dataclasses.replace(measure_unit_costs(subject, data), forward_s=0.01, grad_s=0.03)
    data.extra["unit_costs"] = unit
    kw = dict(layer="blocks.1.conv2", ks=(1, 2, 4), n_random=19, n_boot=20, n_perm=50, min_per_style=4)
    a = build_analysis("ablation", **kw, budget_s=0.1)
    sized = a.estimate_cost(subject, data, unit)
    assert any("styles 8 -> 4" in n for n in sized.notes), sized.notes
    f = a.run(subject, data)
    note = [n for n in f.notes if n.startswith("target styles ablated")]
    assert note == ["target styles ablated (an even sample, to fit budget_s): style0, style2, style5, style7"]
    assert sorted(f.tables["ablation"]["style"].unique()) == ["style0", "style2", "style5", "style7"]


def test_budget_line_names_the_analyses_that_take_the_budget_when_nothing_is_left(tiny_subject, tiny_data):
    """A 26-style network in full.toml: style interpolation and replication (which cannot size
    themselves) took all of the 7-minute budget and every sizable analysis was listed at "budget_s
    0.0 s" with no word on why. The line now names what took it."""
    from interp_gan.pipeline import Plan
    unit = dataclasses.replace(measure_unit_costs(tiny_subject, tiny_data), measure_s=2.0)
    plan = Plan(unit=unit, budgets={"dissection": 0.0, "ablation": 0.0},
                fixed={"overview": 8.0, "replication": 348.0, "style_units": 600.0})
    line = plan.budget_line(420.0)
    assert "shared among dissection, ablation" in line
    assert "cannot size themselves take 15 min 56 s" in line and "style_units 10 min" in line
    assert line.index("style_units") < line.index("replication") < line.index("overview")
    roomy = Plan(unit=unit, budgets={"dissection": 100.0}, fixed={"overview": 8.0})
    assert "cannot size" not in roomy.budget_line(420.0)


def test_a_replicated_analysis_share_pays_for_its_re_runs(tiny_subject):
    """Replication re-runs dissection 4 times (two halves, a new seed, 2 neighbouring quantiles)
    with dissection's own budget-sized parameters. It used to be priced as a fixed cost at the
    configured (unsized) sizes and taken off the budget first, leaving the sizable analyses nothing.
    Now dissection weighs 5 x its estimate in the share, so its budget_s is a fifth of what it is
    given and dissection + its re-runs fit the pipeline's budget."""
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import plan_analyses
    tiny_data = make_tiny_data(tiny_subject, n=256, size=16)         # the budget can halve images down to 64
    unit = dataclasses.replace(measure_unit_costs(tiny_subject, tiny_data), forward_s=0.05, measure_s=1.0)
    analyses = {"dissection": {"n_boot": 20, "n_perm": 20},        # every conv layer: the budget dissects fewer
                "replication": {"analyses": ["dissection"]}}
    full = plan_analyses(tiny_subject, tiny_data, PipelineConfig.from_dict(
        {"name": "t", "device": "cpu", "budget_s": 0, "analyses": analyses}), unit=unit)
    floor = build_analysis("dissection", budget_s=0.1, **analyses["dissection"]).estimate_cost(
        tiny_subject, tiny_data, unit).seconds(unit)                   # every size at its floor
    budget = 1.0 + 5 * floor * 1.3                                    # fits at the floors, not as configured
    assert budget < 1.0 + sum(full.seconds.values())
    plan = plan_analyses(tiny_subject, tiny_data, PipelineConfig.from_dict(
        {"name": "t", "device": "cpu", "budget_s": budget, "analyses": analyses}), unit=unit)
    assert plan.budgets["dissection"] == pytest.approx((budget - 1.0) / 5)
    assert plan.params["replication"] == {"analyses": ["dissection"]} and "replication" not in plan.budgets
    assert plan.seconds["replication"] == pytest.approx(4 * plan.seconds["dissection"], rel=0.01)
    assert plan.seconds["dissection"] < full.seconds["dissection"]
    assert sum(plan.seconds.values()) <= budget


def test_a_long_note_in_the_estimate_table_is_cut_at_a_word_and_says_so():
    from interp_gan.analyses.cost import Cost, UnitCosts, estimate_table
    why = "needs at least two styles with images generated toward each; this subject has one style only"
    line = estimate_table({"ablation": Cost(skip=why)}, UnitCosts(forward_s=0.01, grad_s=0.02)).splitlines()[2]
    note = "skips: " + line.split("  skips: ", 1)[1]
    kept = note[len("skips: "):-4]
    assert len(note) <= 90 and note.endswith(" ...") and why.startswith(kept) and why[len(kept)] == " "


def test_attribution_prices_its_finiteness_pass_over_every_built_image():
    """finite.py runs one gradient per built image (in batches of FINITE_BATCH) before any method:
    with no method, no sanity check and no unit target, that pass is the whole plan."""
    from interp_gan.analyses.attribution.finite import FINITE_BATCH
    a = build_analysis("attribution", targets=["generator"], methods=[], sanity=False)
    c = dict(name="generator", n=20, t_f=0.5, t_fb=2.0, shape=(3, 16, 16), sanity=True, layers=3, on_g=True,
             call_s=0.25, labels=False, cam=True, units=0)
    sizes, _ = a._sized(None, [c])
    assert a._plan_seconds([c], sizes) == pytest.approx(20 * 2.0 + 0.25 * math.ceil(20 / FINITE_BATCH))


def test_a_slow_generator_is_timed_on_few_images_once(monkeypatch):
    """Seconds per image (StyleGAN3 at 256 px and up on a CPU): measuring takes about MEASURE_S, not
    a batch of 32 and repeats (which took minutes before the estimate was printed)."""
    import interp_gan.analyses.cost as cost

    subject = make_tiny_subject()
    data = make_tiny_data(subject)
    data.batch_size = 32
    data = dataclasses.replace(data, content=data.content[:1].repeat(32, 1, 1, 1),
                               style_ids=data.style_ids[:1].repeat(32),
                               z=None if data.z is None else data.z[:1].repeat(32, 1))
    subject.generator.register_forward_pre_hook(lambda m, a: time.sleep(0.02 * len(a[0])))
    monkeypatch.setattr(cost, "MEASURE_S", 0.1, raising=False)
    with count_generator(subject) as n:
        unit = measure_unit_costs(subject, data, 32)
    assert n["forwards"] + n["grads"] <= 16, n
    assert unit.batch_size == 32 and unit.timed_images < 32 and unit.forward_s >= 0.02
    assert f"(batch 32, timed on {unit.timed_images})" in cost.estimate_table({}, unit)
    drawn = dataclasses.replace(unit, output_size=2 * unit.image_size)   # a StyleGAN: its own resolution
    assert f"(content; the generator draws {2 * unit.image_size} px)" in cost.estimate_table({}, drawn)


def test_fmt_seconds_never_says_60():
    from interp_gan.analyses.cost import fmt_seconds
    assert fmt_seconds(239.6) == "4 min 00 s" and fmt_seconds(3599.7) == "1 h 00 min"
    assert fmt_seconds(4 * 3600 - 20) == "4 h 00 min" and fmt_seconds(3 * 3600 + 125) == "3 h 02 min"


def _plain(depth: int) -> Subject:
    """A plain conv network of ``depth`` 2-unit conv layers (nobody configured its layers: every conv
    with a spatial output is dissected)."""
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, 2, 3, padding=1)]
    for _ in range(depth - 1):
        layers += [torch.nn.ReLU(), torch.nn.Conv2d(2, 2, 3, padding=1)]
    return Subject.wrap_module(torch.nn.Sequential(*layers, torch.nn.Conv2d(2, 3, 1), torch.nn.Tanh()).eval())


def _only(unit: UnitCosts, **prices) -> UnitCosts:
    """``unit`` with every price 0 but ``prices`` (shapes and order kept): the estimate is then a count."""
    zero = {f.name: 0.0 for f in dataclasses.fields(UnitCosts) if f.name.endswith("_s") and f.name != "measure_s"}
    return dataclasses.replace(unit, **{**zero, **prices})


def test_dissection_estimate_counts_a_fixed_cost_per_layer_block_and_pass():
    """A network of many small layers paid a fixed cost per layer (its sketch, thresholds, counting and
    null calls, tables) that the per-element prices left out: 160 layers were estimated 9x low."""
    g = torch.Generator().manual_seed(0)
    data = AnalysisData(torch.rand(40, 3, 16, 16, generator=g) * 2 - 1, torch.zeros(40, dtype=torch.long))
    a = build_analysis("dissection", n_boot=1, n_perm=10, perm_block=16, control_draws=2)
    secs = {}
    for depth in (4, 12):
        subject = _plain(depth)
        unit = _only(measure_unit_costs(subject, data), layer_s=1.0)
        secs[depth] = a.estimate_cost(subject, data, unit).seconds(unit)
    # (1 + 2 draws) passes x 3 blocks of 16 images x (depth + the 1x1 conv) layers, 1 s each
    assert secs[4] == pytest.approx(3 * 3 * 5) and secs[12] == pytest.approx(3 * 3 * 13)


def test_dissection_estimate_prices_the_spatial_nulls_fft_per_cell_and_the_image_nulls_pairs():
    """The spatial null correlates every shift of each image's masks by FFT (test_res^2 cells per
    image x concept x unit, whatever n_perm), the image null each block's image pairs: both were
    priced per permutation alone, 4x low on the demo's discriminator dissection."""
    subject = _plain(2)
    g = torch.Generator().manual_seed(0)
    data = AnalysisData(torch.rand(40, 3, 16, 16, generator=g) * 2 - 1, torch.zeros(40, dtype=torch.long))
    unit = measure_unit_costs(subject, data)
    a = build_analysis("dissection", n_boot=1, n_perm=10, perm_block=16, control=False, test_res=8)
    C = 2 + 2 + 3                                         # the two 2-unit convs and the 1x1 conv to RGB
    from interp_gan.analyses.units.concepts import CONCEPT_NAMES
    K = len(CONCEPT_NAMES)                               # one style: no image-level concepts
    shift = _only(unit, shift_s=1.0)
    assert a.estimate_cost(subject, data, shift).seconds(shift) == pytest.approx(40 * K * C * 64)
    cross = _only(unit, cross_s=1.0)                     # blocks of 16 images: 16 partners per image
    assert a.estimate_cost(subject, data, cross).seconds(cross) == pytest.approx(40 * 16 * K * C * 64)
    spatial = build_analysis("dissection", n_boot=1, n_perm=10, perm_block=16, control=False, test_res=8,
                             null="image")
    assert spatial.estimate_cost(subject, data, shift).seconds(shift) == 0


def test_dissection_budget_cuts_control_draws_to_two_first_and_says_so(tiny_subject, tiny_data):
    unit = _only(measure_unit_costs(tiny_subject, tiny_data), forward_s=1.0)
    tiny_data.extra["unit_costs"] = unit
    n = len(tiny_data)
    kw = dict(layers=["blocks.*.conv2"], n_boot=10, n_perm=10, control_draws=4)
    full = build_analysis("dissection", **kw).estimate_cost(tiny_subject, tiny_data, unit)
    assert full.forwards == 5 * n                        # the trained network and every draw
    sized = build_analysis("dissection", **kw, budget_s=3.5 * n)
    est = sized.estimate_cost(tiny_subject, tiny_data, unit)
    assert est.forwards == 3 * n                         # draws 4 -> 3 -> 2; layers and images kept
    assert any("control_draws 4 -> 2" in x and "layers" not in x.split("sized down:")[1] for x in est.notes)
    f = sized.run(tiny_subject, tiny_data)
    draws = f.tables["dissection_control_draws"]
    assert sorted(set(draws["draw"])) == [0, 1]
    assert any("control draws (to fit budget_s): 2 of the 4" in x for x in f.notes)
    assert len(set(f.tables["dissection_units"]["layer"])) == 2
    # never below 2 draws: a budget too small for anything cuts layers and images after them
    floor = build_analysis("dissection", **kw, budget_s=1.0).estimate_cost(tiny_subject, tiny_data, unit)
    assert floor.forwards == 3 * n and any("control_draws 4 -> 2" in x and "still over" in x for x in floor.notes)
    one = build_analysis("dissection", **{**kw, "control_draws": 1}, budget_s=1.0)
    assert one.estimate_cost(tiny_subject, tiny_data, unit).forwards == 2 * n   # one draw stays one


def test_the_layer_cost_is_not_timed_on_one_rank_of_several(monkeypatch):
    """Rank 0 alone makes the estimate under torchrun; timing a dissection there would wait for
    the other ranks in its collectives forever, so a constant stands in."""
    import interp_gan.distributed
    from interp_gan.analyses import cost
    monkeypatch.setattr(cost, "_LAYER_S", {})
    monkeypatch.setattr(interp_gan.distributed, "rank_and_world", lambda group=None: (0, 2))
    ran = []
    monkeypatch.setattr("interp_gan.analyses.units.dissection.Dissection.run", lambda *a, **k: ran.append(1))
    assert cost._layer_cost(torch.device("cpu")) == cost.LAYER_S_UNTIMED and not ran


@pytest.mark.parametrize("name", ["directions", "style_interpolation"])
def test_sequential_baselines_are_priced_at_their_worst_case_and_cut_first(name):
    """n_random_max adds, per row that may walk them, n_images images per extra baseline: the estimate
    prices every row walking all of them ("up to" in its note and in the estimate table), the run
    sends no more than that through the generator, and a budget between the fixed rule's cost and
    that worst case cuts n_random_max (only) back towards n_random."""
    from interp_gan.analyses.cost import estimate_table
    subject = make_tiny_subject()
    data = make_tiny_data(subject)
    unit = dataclasses.replace(measure_unit_costs(subject, data), order=())
    fast = dict(get_analysis(name).fast)
    R, n_max = fast["n_random"], fast["n_random"] + 30
    off = build_analysis(name, **fast).estimate_cost(subject, data, unit)
    seq = build_analysis(name, **fast, n_random_max=n_max)
    on = seq.estimate_cost(subject, data, unit)
    with count_generator(subject) as n:
        f = seq.run(subject, data)
    table = f.tables[name]
    rows = int((table["method"] != "random").sum()) if name == "directions" else table["pair"].nunique()
    n_img = min(fast["n_images"], len(data))
    assert on.forwards - off.forwards == pytest.approx(n_img * (n_max - R) * rows)
    assert any(x.startswith(f"up to {n_max} random") for x in on.notes)
    assert not any(x.startswith("up to") for x in off.notes)
    assert f"up to {n_max} random" in estimate_table({name: on}, unit)
    assert off.images() - 2 <= n["forwards"] + n["grads"] <= 1.1 * on.images() + 2
    assert (table["n_random_used"] <= n_max).all() and (table["n_random_used"] >= R - 1).all()
    budget = (off.seconds(unit) + on.seconds(unit)) / 2
    g = build_analysis(name, **fast, n_random_max=n_max, budget_s=budget).run(subject, data)
    cut = g.params["sized_to_budget"]
    assert set(cut) == {"n_random_max"} and R <= cut["n_random_max"] < n_max, cut
    assert (g.tables[name]["n_random_used"] <= cut["n_random_max"]).all()
