"""What an analysis costs, said before it runs; a budget that sizes it; progress while it runs.

    unit = measure_unit_costs(subject, data)          # seconds per image on this subject, size and batch
    cost = build_analysis("dissection").estimate_cost(subject, data, unit)
    cost.seconds(unit)                                # the estimate; cost.forwards / cost.grads: images
    print(estimate_table({"dissection": cost}, unit))

    with count_generator(subject, on_images=bar_update) as n:   # images through the generator so far
        finding = analysis.run(subject, data)         # n["forwards"], n["grads"]

The cost model (docs/scaling.md): an analysis' time is dominated by passes of images through
the generator, so each analysis counts them from its parameters (``Analysis.estimate_cost``):
``forwards`` (images through G without gradient; a forward stopped at a layer counts as the
share of G's conv layers it runs) and ``grads`` (images forward + backward to the input, as
attribution needs), ``classified`` / ``grammed`` (generated images judged by the two style
classifiers / turned into Gram matrices by the feature net: ablation, style edits and style
interpolation judge nearly every image they generate, and on a small generator the judges cost
as much as the generator; ``concepts``: images whose concept masks ablation measures), ``passes``
(small judged passes: ablation and style edits make a pass per style and per random set, often of a
few images, so the fixed cost of a call, ``pass_s``, weighs on many-style models), plus ``other_s``: work that is not a generator pass, counted in elements
(dissection's region counting, permutation and shift nulls and a fixed cost per layer, UMAP fits,
a classifier's training) and priced by ``UnitCosts``. ``measure_unit_costs`` times, on the subject at the pipeline's image
size and batch: one batch forward, one forward+backward (a batch of at most 8, attribution's
internal batch), the judges on one batch, dissection's counting and null kernels (the median of 5:
the machine with the load it has) and, once per process, what a dissected layer costs per pass
(``_layer_cost``). Those measured
seconds per image times each analysis' counts is the estimate; the pipeline prints it before
the first analysis and the measured time next to it after the last (``comparison_table``).

Budgets: an analysis with a ``budget_s`` parameter (attribution, dissection, directions,
ablation, style edits, style interpolation) sizes itself to fit it (``size_to_budget``): it cuts its own sizes in a fixed order,
each down to a floor, until the estimate fits, and says every cut in the Finding's notes (the
report prints them); nothing is cut while the estimate fits. The pipeline's ``budget_s`` is
shared out among those analyses (``share_budget``). Sequential random baselines (``n_random_max``
of directions, style interpolation and ablation) are priced at their worst case, every row drawing all of
them; the estimate table's note then starts "up to", and a budget cuts ``n_random_max`` first.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_gan.harvest.layout import probing

from interp_gan.util import evenly

__all__ = ["UnitCosts", "Cost", "measure_unit_costs", "count_generator", "Progress", "size_to_budget",
           "share_budget", "shared_unit_costs", "evenly", "halve_to", "minus_one_to", "double_to", "progress_enabled", "estimate_table", "comparison_table", "fmt_seconds", "unit_costs_for"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.Linear)
GRAD_BATCH = 8   # the forward+backward is timed at this batch (attribution's internal_batch_size)
MEASURE_S = 10.0  # a slow generator (seconds per image) is timed on as few images as fit in this, each timing once


@dataclass(frozen=True)
class UnitCosts:
    """Seconds per image on one subject at one image size and batch (``measure_unit_costs``)."""
    forward_s: float                    # one image through the generator, no gradient
    grad_s: float                       # one image forward + backward to the input
    region_s: float = 2e-9              # dissection counting: one unit x one image pixel (upsample, region, overlap)
    null_s: float = 2e-10               # one element of a permutation null (permutation x image x concept x unit)
    sketch_s: float = 2e-8              # one activation value into a quantile sketch (dissection's harvest)
    cross_s: float = 2e-11              # image null's cross overlaps: image x image x concept x unit x test cell
    shift_s: float = 1e-8               # spatial null's FFT correlation: image x concept x unit x test cell (all shifts)
    layer_s: float = 0.0                # fixed cost of one dissected layer in one block of one pass (its calls)
    call_s: float = 0.0                 # fixed cost of one call, whatever its batch (forward+backward of 1 and of b)
    forward_small_s: float = 0.0        # one image through G without gradient at a batch of GRAD_BATCH (attribution's)
    classify_s: float = 0.0             # one generated image through the subject's style classifiers (both)
    gram_s: float = 0.0                 # one generated image's Gram matrices from the subject's feature net
    concept_s: float = 0.0              # one image's concept masks (colour / texture / position: ablation's measure)
    pass_s: float = 0.0                 # fixed cost of one small judged pass (G and the judges called on few images)
    rank_op_s: float = 1e-9             # one operation of the exact rank-sum null (``findings.rank_sum``; style units)
    shuffle_s: float = 5e-9             # one label shuffle x style x (image + unit) of style units' Monte Carlo null
    image_size: int = 0
    batch_size: int = 1
    shapes: dict = field(default_factory=dict)   # module name -> output shape of one image (C, H, W) or (C,)
    order: tuple = ()                   # conv / linear modules of G in the order they ran
    measure_s: float = 0.0              # how long measuring took
    device: str = "cpu"
    timed_images: int = 0               # images the batch forward was timed on (< batch_size: a slow generator)
    output_size: int = 0                # the generated image's side (a StyleGAN's own resolution), when known

    def channels(self, layer: str) -> int:
        """Output channels of ``layer`` (0 when it did not run in the measured forward)."""
        s = self.shapes.get(layer)
        return int(s[0]) if s else 0

    def pixels(self, layer: str) -> int:
        s = self.shapes.get(layer)
        return int(math.prod(s[1:])) if s and len(s) > 1 else 1

    def fraction(self, layer: str | None) -> float:
        """Share of the generator a forward stopped after ``layer`` runs (by conv layers; 1 if unknown)."""
        if layer is None or not self.order:
            return 1.0
        if layer in self.order:
            return (self.order.index(layer) + 1) / len(self.order)
        inside = [i for i, n in enumerate(self.order) if n.startswith(layer + ".")]
        return (max(inside) + 1) / len(self.order) if inside else 1.0


@dataclass
class Cost:
    """An analysis' work: generator passes (images), other seconds, or the reason it will skip."""
    forwards: float = 0.0               # images through G without gradient
    grads: float = 0.0                  # images through G forward + backward
    other_s: float = 0.0                # seconds of work that is not a generator pass
    skip: str = ""                      # non-empty: the analysis will skip, this is why
    notes: list[str] = field(default_factory=list)   # what was assumed or cut
    calls: float | None = None          # generator calls (each costs call_s); None: images / batch size
    classified: float = 0.0             # generated images the style classifiers judge (each costs classify_s)
    grammed: float = 0.0                # generated images whose Grams the feature net computes (gram_s each)
    concepts: float = 0.0               # images whose concept masks are computed (concept_s each)
    passes: float = 0.0                 # small judged passes (a G call and its judges' calls; pass_s each)

    def seconds(self, unit: UnitCosts) -> float:
        calls = self.calls if self.calls is not None else self.images() / max(1, unit.batch_size)
        return (self.forwards * unit.forward_s + self.grads * unit.grad_s + self.other_s + calls * unit.call_s
                + self.judges_s(unit))

    def judges_s(self, unit: UnitCosts) -> float:
        """Seconds of judging generated images (classifiers, Grams, concept masks) and of the
        fixed costs of small judged passes: what the estimate table's "other" adds to ``other_s``."""
        return (self.classified * unit.classify_s + self.grammed * unit.gram_s + self.concepts * unit.concept_s
                + self.passes * unit.pass_s)

    def images(self) -> float:
        return self.forwards + self.grads

    def __add__(self, other: "Cost") -> "Cost":
        calls = None if self.calls is None and other.calls is None else (self.calls or 0) + (other.calls or 0)
        return Cost(self.forwards + other.forwards, self.grads + other.grads, self.other_s + other.other_s,
                    self.skip or other.skip, self.notes + other.notes, calls, self.classified + other.classified,
                    self.grammed + other.grammed, self.concepts + other.concepts, self.passes + other.passes)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timed(fn: Callable[[], Any], dev: torch.device) -> float:
    _sync(dev)
    t0 = time.perf_counter()
    fn()
    _sync(dev)
    return time.perf_counter() - t0


def _typical(fn: Callable[[], Any], dev: torch.device, reps: int = 5) -> float:
    """The median of ``reps`` timings of a short kernel: on cores other jobs share, the fastest of a
    few 10 ms calls is the machine without them (3x faster than the same calls in a long run at load
    5 on 2 cores, 2026-12-03), the median the machine as the run will find it."""
    return sorted(_timed(fn, dev) for _ in range(reps))[reps // 2]


def _shapes(G: nn.Module, call: Callable[[], Any]) -> tuple[dict, tuple]:
    """Output shape (per image) of every module of G that runs in ``call()``, and its conv order."""
    shapes: dict[str, tuple] = {}
    order: list[str] = []
    handles = []
    for name, m in G.named_modules():
        if not name:
            continue

        def hook(mod, inp, out, name=name):
            if isinstance(out, Tensor) and out.dim() >= 2 and name not in shapes:
                shapes[name] = tuple(out.shape[1:])
                if isinstance(mod, _CONV):
                    order.append(name)
        handles.append(m.register_forward_hook(hook))
    try:
        call()
    finally:
        for h in handles:
            h.remove()
    return shapes, tuple(order)


def _kernel_costs(dev: torch.device, size: int) -> dict[str, float]:
    """Dissection's counting kernels, its nulls and its quantile sketch, timed on small random
    inputs on ``dev`` (the fields of ``UnitCosts`` they price): ``region_s`` (a unit map upsampled,
    thresholded and overlapped with the masks, per unit x pixel), the image null's cross overlaps
    (``cross_s``, a matrix product per image pair x concept x unit x test cell) and its gathered
    sums (``null_s``, per permutation x image x concept x unit; the slope between 8 and 400
    permutations), the spatial null's FFT correlation at the units per call dissection uses
    (``shift_s``, per image x concept x unit x test cell: every shift at once), the sketch
    (``sketch_s``, per value) and ``layer_s``, what each dissected layer pays per block and pass
    whatever its size (``_layer_cost``). Each is the median of 5 calls (``_typical``)."""
    from interp_gan.harvest.nulls import mask_spectrum, permutation_sums, shift_sums, shift_units
    from interp_gan.harvest.stats import Quantile
    g = torch.Generator().manual_seed(0)
    H = max(16, min(size, 256))
    c, K = 32, 15
    a = torch.rand(2, c, H // 4, H // 4, generator=g).to(dev).contiguous(memory_format=torch.channels_last)
    m = (torch.rand(2, H * H, K, generator=g) > 0.5).float().to(dev)

    def region(a=a, m=m):
        n, c = a.shape[:2]
        A = F.interpolate(a, size=(H, H), mode="bilinear", align_corners=False)
        A = (A > 0.5).float()
        Ap = A.permute(0, 2, 3, 1).reshape(n, H * H, c)
        torch.bmm(Ap.transpose(1, 2), m)
        Ap.sum(1)
        return F.adaptive_avg_pool2d(A, 16)
    region()
    region_s = _typical(region, dev) / (2 * c * H * H)
    S, C, r, B = 32, 64, 16, 400
    R = r * r
    pa = torch.rand(S, C, R, generator=g).to(dev)
    pm = (torch.rand(S, K, r, r, generator=g) > 0.5).float().to(dev)
    pmf = pm.flatten(2)
    perms = torch.argsort(torch.rand(B, S, generator=g), dim=1).to(dev)
    permutation_sums(pa, pmf, perms)
    t_few = _typical(lambda: permutation_sums(pa, pmf, perms[:8]), dev)
    t_many = _typical(lambda: permutation_sums(pa, pmf, perms), dev)
    null_s = max(t_many - t_few, 0.1 * t_many) / ((B - 8) * S * K * C)
    cross_s = max(t_few - 8 * S * K * C * null_s, 0.1 * t_few) / (S * S * K * C * R)
    step = min(C, shift_units(S, R, K, dev))
    shifts = torch.randint(0, R, (8, S), generator=g).to(dev)
    FM = mask_spectrum(pm)
    shift_sums(pa[:, :step], pm, shifts, r, m_fft=FM)
    shift_s = _typical(lambda: shift_sums(pa[:, :step], pm, shifts, r, m_fft=FM), dev) / (S * K * step * R)
    acts = torch.rand(8, 64, 32, 32, generator=g).to(dev)
    q = Quantile(64)
    q.add_maps(acts)                     # fills the sketch's first level; the timed adds compact it
    sketch_s = _typical(lambda: q.add_maps(acts), dev) / acts.numel()
    return dict(region_s=region_s, null_s=null_s, sketch_s=sketch_s, cross_s=cross_s, shift_s=shift_s,
                layer_s=_layer_cost(dev))


_NULL_S: dict[str, float] = {}


def _null_costs() -> dict[str, float]:
    """Style units' p-value kernels, numpy on the CPU whatever the device, timed once per process
    (the median of 5, ``_typical``): ``rank_op_s``, the exact null's seconds per operation
    (``rank_sum_counts`` of 128 untied values up to group size 32, ``rank_sum_ops`` operations),
    and ``shuffle_s``, the Monte Carlo null's seconds per shuffle x style x (image + unit)
    (``auroc_pvalues(null="permutation")`` on 128 images in 4 styles, 256 units: the slope between
    100 and 1000 shuffles, so the ranking both share is left out)."""
    if _NULL_S:
        return dict(_NULL_S)
    import numpy as np
    from interp_gan.analyses.units.style_units import auroc_pvalues
    from interp_gan.findings.rank_sum import rank_sum_counts, rank_sum_ops
    cpu = torch.device("cpu")
    n, k, s, u = 128, 32, 4, 256
    r2 = np.arange(2, 2 * n + 1, 2)
    rank_sum_counts(r2, k)
    rank_op_s = _typical(lambda: rank_sum_counts(r2, k), cpu) / rank_sum_ops(n, [k])
    x, y = np.random.default_rng(0).standard_normal((n, u)), np.arange(n) % s
    auroc_pvalues(x, y, s, n_perm=10, null="permutation")
    t = {b: _typical(lambda b=b: auroc_pvalues(x, y, s, n_perm=b, null="permutation"), cpu) for b in (100, 1000)}
    shuffle_s = max(t[1000] - t[100], 0.1 * t[1000]) / (900 * s * (n + u))
    _NULL_S.update(rank_op_s=rank_op_s, shuffle_s=shuffle_s)
    return dict(_NULL_S)


_LAYER_S: dict[str, float] = {}
LAYER_S_UNTIMED = 0.02   # seconds per layer and pass where it cannot be timed (17-23 ms on 2 loaded cores, 2026-12-03)


def _tiny_plain_net(depth: int, ch: int = 2) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, ch, 3, padding=1)]
    for _ in range(depth - 1):
        layers += [nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1)]
    return nn.Sequential(*layers, nn.Conv2d(ch, 3, 1), nn.Tanh())


def _layer_cost(dev: torch.device) -> float:
    """Seconds a dissected layer costs per pass beyond its elements: a real dissection (one
    control draw, small nulls) of a plain network of 4-unit conv layers on 16 images at 32 px in
    two batches, timed with 2 and with 10 dissected layers: the difference per layer and pass
    (its few elements included). That is the calls each layer makes (the sketch,
    top-k and store per batch, thresholds, the counting and nulls, p-values, tables), which a
    network of ~200 small layers pays 200 times (``UnitCosts.layer_s``). The machine's, not the
    subject's: timed once per process and device (about 3 s on a CPU). Under a process group of
    several ranks the dissection it would time is a collective that only rank 0 would join (the
    estimate is made there), so ``LAYER_S_UNTIMED`` stands in."""
    from interp_gan.distributed import rank_and_world
    key = str(dev)
    if key in _LAYER_S:
        return _LAYER_S[key]
    if rank_and_world()[1] > 1:
        return LAYER_S_UNTIMED
    from interp_gan.analyses.base import AnalysisData
    from interp_gan.analyses.units.dissection import Dissection
    from interp_gan.subject.protocol import Subject
    g = torch.Generator().manual_seed(0)
    content = (torch.rand(16, 3, 32, 32, generator=g) * 2 - 1).to(dev)
    data = AnalysisData(content, torch.zeros(16, dtype=torch.long), batch_size=8)
    d = Dissection(n_boot=4, n_perm=4, perm_block=16, control_draws=1, n_show=1)
    times: dict[int, list[float]] = {2: [], 10: []}
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):   # the caller's RNG untouched
        torch.manual_seed(0)
        subjects = {depth: Subject.wrap_module(_tiny_plain_net(depth, ch=4).to(dev).eval()) for depth in (2, 10)}
        d.run(subjects[2], data)                       # warm-up: imports, first calls
        for _ in range(3):                             # interleaved, the median of each (``_typical``)
            for depth, subject in subjects.items():
                times[depth].append(_timed(lambda: d.run(subject, data), dev))
    med = {k: sorted(v)[1] for k, v in times.items()}
    _LAYER_S[key] = max(0.0, (med[10] - med[2]) / (8 * 2))
    return _LAYER_S[key]


@torch.no_grad()
def _judge_costs(subject, images: Tensor) -> tuple[float, float]:
    """(classify_s, gram_s): seconds per image for the subject's style classifiers (both, where
    present) and its feature net's Gram matrices, timed on ``images`` (content images stand in
    for generated ones: same size and batch). Each is timed twice and the faster kept."""
    dev, b = images.device, len(images)
    clfs = [m for m in (subject.classifier, subject.texture_classifier) if m is not None]
    f = subject.feature_net

    def classify():
        for m in clfs:
            m(images)
    classify_s = min(_timed(classify, dev) for _ in range(2)) / b if clfs else 0.0
    gram_s = min(_timed(lambda: f.grams(images), dev) for _ in range(2)) / b \
        if f is not None and callable(getattr(f, "grams", None)) else 0.0
    return classify_s, gram_s


def _concept_cost(images: Tensor) -> float:
    """Seconds per image of the concept masks (``concepts.concept_masks``) at this size and batch."""
    from interp_gan.analyses.units.concepts import concept_masks
    dev = images.device
    return min(_timed(lambda: concept_masks(images), dev) for _ in range(2)) / len(images)


def _judged_pass(subject, content: Tensor, ids: Tensor, z: Tensor | None) -> None:
    """A generator call and the calls of every judge on its images (what a measured pass makes)."""
    from interp_gan.analyses.units.concepts import concept_masks
    images = subject.generate(content, ids, z)
    for m in (subject.classifier, subject.texture_classifier):
        if m is not None:
            m(images)
    f = subject.feature_net
    if f is not None and callable(getattr(f, "grams", None)):
        f.grams(images)
    concept_masks(images)


def measure_unit_costs(subject, data, batch_size: int | None = None) -> UnitCosts:
    """Time the subject on ``data``'s first images at their size: one forward of a batch
    (``batch_size``, default data.batch_size), one forward+backward to the input of at most
    ``GRAD_BATCH`` images, and dissection's counting kernels. A warm-up forward of one image
    first records every module's output shape (unit counts) and the order the conv layers run."""
    t_start = time.perf_counter()
    dev = subject.device
    subject.eval()
    n = len(data)
    b = max(1, min(batch_size or data.batch_size, n))
    content, ids = data.content[:b].to(dev), data.style_ids[:b].to(dev)
    z = None if data.z is None else data.z[:b].to(dev)
    if z is None and subject.latent_dim:
        z = subject.sample_z(b, 0)
    zz = lambda k: None if z is None else z[:k]  # noqa: E731
    with torch.no_grad():
        t0 = time.perf_counter()
        outs: list = []
        shapes, order = _shapes(subject.generator,
                                lambda: outs.append(subject.generate(content[:1], ids[:1], zz(1))))
        one_s = time.perf_counter() - t0
        # a generator of seconds per image (StyleGAN3 at 1024 px on a CPU) is timed on as many images as
        # fit in MEASURE_S, each timing once: measuring must not take longer than the analyses it sizes
        bt = max(1, min(b, int(MEASURE_S / max(one_s, 1e-9))))
        reps = 2 if one_s * 8 <= MEASURE_S else 1
        fwd = _timed(lambda: subject.generate(content[:bt], ids[:bt], zz(bt)), dev) / bt
        classify_s, gram_s = _judge_costs(subject, content)
        try:    # judges that cannot take this subject's images cost nothing here (the analysis says why)
            concept_s = _concept_cost(content)
            # one judged pass of a single image, less its per-image prices: the fixed cost of a call
            # that ablation and style edits pay per style and random set (on few images each)
            one = min(_timed(lambda: _judged_pass(subject, content[:1], ids[:1], zz(1)), dev) for _ in range(reps))
            pass_s = max(0.0, one - (fwd + classify_s + gram_s + concept_s))
        except Exception:   # noqa: BLE001
            concept_s = pass_s = 0.0
    bg = min(b, GRAD_BATCH, bt)
    with torch.no_grad():       # attribution's forwards run at its internal batch: dearer per image on CPU
        small = lambda: subject.generate(content[:bg], ids[:bg], zz(bg))  # noqa: E731
        fwd_small = fwd if reps == 1 and bg == bt else min(_timed(small, dev) for _ in range(reps)) / bg
    x = content[:bg].detach().clone().requires_grad_(True)

    def grad():
        with torch.enable_grad():
            out = subject.generate(x, ids[:bg], zz(bg))
            torch.autograd.grad(out.float().sum(), x)
    try:
        t_b, n_b = _timed(grad, dev), bg
        grad_s, call_s = t_b / n_b, 0.0
        if n_b > 1:                 # and one image: t(b) = call_s + b * grad_s through both points
            x = content[:1].detach().clone().requires_grad_(True)
            bg = 1
            t_1 = min(_timed(grad, dev) for _ in range(reps))
            # noise never makes an image free nor a call cost more than a quarter of a full batch's
            grad_s = max((t_b - t_1) / (n_b - 1), 0.75 * t_b / n_b)
            call_s = max(0.0, t_b - n_b * grad_s)
    except RuntimeError:            # a generator that is not differentiable: a forward+backward ~ 3 forwards
        grad_s, call_s = 3 * fwd, 0.0
    kernels = _kernel_costs(dev, int(data.content.shape[-1]))
    return UnitCosts(forward_s=fwd, grad_s=grad_s, **kernels, **_null_costs(), call_s=call_s,
                     forward_small_s=fwd_small, classify_s=classify_s, gram_s=gram_s, concept_s=concept_s, pass_s=pass_s,
                     image_size=int(data.content.shape[-1]), batch_size=b, shapes=shapes, order=order,
                     measure_s=time.perf_counter() - t_start, device=str(dev), timed_images=bt,
                     output_size=int(outs[0].shape[-1]) if outs and isinstance(outs[0], Tensor) else 0)


def unit_costs_for(subject, data) -> UnitCosts:
    """The pipeline's measured unit costs (``data.extra["unit_costs"]``), else measured now.
    Under torch.distributed every rank gets rank 0's, so sharded analyses size themselves alike."""
    unit = data.extra.get("unit_costs") if isinstance(data.extra, dict) else None
    if isinstance(unit, UnitCosts):
        return unit
    return shared_unit_costs(measure_unit_costs(subject, data))


def shared_unit_costs(unit: UnitCosts) -> UnitCosts:
    """Rank 0's unit costs on every rank (a no-op in one process)."""
    from interp_gan.distributed import all_gather_objects, rank_and_world
    return all_gather_objects(unit)[0] if rank_and_world()[1] > 1 else unit


@contextlib.contextmanager
def count_generator(subject, on_images: Callable[[dict], None] | None = None) -> Iterator[dict]:
    """Count the images that pass through ``subject.generator`` in the block: {"forwards": n
    without gradient, "grads": n with gradient enabled} (a forward pre-hook on the generator's
    root module; removed on exit, also when the block raises). ``on_images(counts)`` is called
    after each pass (progress bars)."""
    counts = {"forwards": 0, "grads": 0}

    def pre(mod, args):
        if probing():              # probe_layers' one forward (harvest/layout.py) is no analysis pass
            return
        x = next((a for a in args if isinstance(a, Tensor)), None)
        k = int(x.shape[0]) if x is not None and x.dim() > 0 else 1
        counts["grads" if torch.is_grad_enabled() else "forwards"] += k
        if on_images is not None:
            on_images(counts)
    h = subject.generator.register_forward_pre_hook(pre)
    try:
        yield counts
    finally:
        h.remove()


def progress_enabled() -> bool:
    """Bars on stderr only on a terminal, not under CI, and not with INTERP_GAN_PROGRESS=0."""
    if os.environ.get("INTERP_GAN_PROGRESS", "") == "0" or os.environ.get("CI"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class Progress:
    """A tqdm bar of generator images (counted by ``count_generator``) against the estimate; off
    when ``progress_enabled()`` is False (the start / finish lines print anyway)."""

    def __init__(self, name: str, total_images: float, enabled: bool | None = None) -> None:
        self.bar = None
        if enabled if enabled is not None else progress_enabled():
            from tqdm import tqdm
            self.bar = tqdm(total=max(1, int(round(total_images))), desc=name, unit="img", file=sys.stderr,
                            leave=False, mininterval=0.5, dynamic_ncols=True)

    def __call__(self, counts: dict) -> None:
        if self.bar is not None:
            done = counts["forwards"] + counts["grads"]
            if done > self.bar.total:
                self.bar.total = done
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --- budgets ---------------------------------------------------------------------------------------
Cut = tuple[str, Callable[[Any], Any]]   # (parameter, value -> the next smaller value, or None at its floor)


def halve_to(floor: int) -> Callable[[Any], Any]:
    """A cut: an integer halved (rounded down) but never below ``floor`` (None once there)."""
    def step(v):
        if v is None or v <= floor:
            return None
        return max(floor, int(v) // 2)
    return step


def minus_one_to(floor: int) -> Callable[[Any], Any]:
    """A cut: an integer less one, never below ``floor`` (None once there): for a small count
    where each step matters (dissection's control draws, 3 -> 2)."""
    def step(v):
        if v is None or v <= floor:
            return None
        return int(v) - 1
    return step


def double_to(ceiling: int) -> Callable[[Any], Any]:
    """A cut for a size whose cost falls as it grows (occlusion's patch side): doubled up to ``ceiling``."""
    def step(v):
        if v is None or v >= ceiling:
            return None
        return min(ceiling, int(v) * 2)
    return step


def size_to_budget(sizes: dict[str, Any], seconds: Callable[[dict], float], budget_s: float | None,
                   cuts: list[Cut], what: str = "") -> tuple[dict[str, Any], list[str]]:
    """Cut ``sizes`` in the order of ``cuts`` until ``seconds(sizes)`` <= ``budget_s``.

    Each cut takes its parameter one step down (``halve_to``, ``double_to`` or any callable that
    returns None at its floor) and is repeated until the estimate fits or the floor is reached,
    then the next cut starts. Returns (the sized parameters, notes): one note per parameter
    changed (from -> to) and one with the estimate before and after; no notes when nothing was
    cut. A budget of None or <= 0 cuts nothing."""
    sizes = dict(sizes)
    before = seconds(sizes)
    if not budget_s or budget_s <= 0 or before <= budget_s:
        return sizes, []
    start = dict(sizes)
    now = before
    for name, step in cuts:
        while now > budget_s:
            trial, cost = dict(sizes), now
            while cost >= now:              # step on until the estimate falls (a size above what is used
                nxt = step(trial[name])     # costs nothing, e.g. n_samples over the images there are)
                if nxt is None or nxt == trial[name]:
                    break
                trial[name] = nxt
                cost = seconds(trial)
            if cost >= now:                 # nothing gained down to the floor: leave this size as it is
                break
            sizes, now = trial, cost
        if now <= budget_s:
            break
    after = now
    changed = [f"{k} {start[k]} -> {sizes[k]}" for k in sizes if sizes[k] != start[k]]
    head = f"budget{' of ' + what if what else ''}: estimated {fmt_seconds(before)} > budget_s {fmt_seconds(budget_s)}"
    if not changed:
        return sizes, [f"{head}; nothing left to cut (every size at its floor): it runs as configured"]
    tail = (f"; the estimate after the cuts is {fmt_seconds(after)}" +
            ("" if after <= budget_s else f", still over the budget: every cut is at its floor"))
    return sizes, [f"{head}, so sized down: {', '.join(changed)}{tail} (raise budget_s, or set it to 0, to run "
                   f"the configured sizes)"]


def share_budget(budget_s: float, costs: dict[str, float], sizable: set[str]) -> dict[str, float]:
    """Split a pipeline budget: the analyses that cannot size themselves keep their estimate; the
    rest of the budget goes to the ``sizable`` ones, each getting at most its own estimate and
    the others an equal share of what is left (max-min fair). -> {sizable name: its budget}."""
    fixed = sum(c for n, c in costs.items() if n not in sizable)
    left = max(0.0, budget_s - fixed)
    want = {n: costs[n] for n in costs if n in sizable}
    out: dict[str, float] = {}
    while want:
        share = left / len(want)
        small = {n: c for n, c in want.items() if c <= share}
        if not small:
            out.update({n: share for n in want})
            break
        for n, c in small.items():
            out[n] = c
            left -= c
            del want[n]
    return out


# --- tables ------------------------------------------------------------------------------------------
def fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    if round(s) < 3600:        # round first: 239.6 s is "4 min 00 s", never "3 min 60 s"
        t = int(round(s))
        return f"{t // 60} min {t % 60:02d} s"
    m = int(round(s / 60))
    return f"{m // 60} h {m % 60:02d} min"


def estimate_table(costs: dict[str, Cost], unit: UnitCosts, budgets: dict[str, float] | None = None) -> str:
    """The estimate printed before the run: per analysis the generator images, the seconds, and
    the budget or the reason it will skip; the total; the measured unit costs it rests on."""
    budgets = budgets or {}
    drawn = (f" (content; the generator draws {unit.output_size} px)"
             if unit.output_size and unit.output_size != unit.image_size else "")
    lines = [f"estimate (measured on {unit.device} at {unit.image_size} px{drawn} in {unit.measure_s:.1f} s: "
             f"{unit.forward_s * 1e3:.1f} ms per image forward (batch {unit.batch_size}"
             + (f", timed on {unit.timed_images}" if 0 < unit.timed_images < unit.batch_size else "") + "), "
             f"{unit.grad_s * 1e3:.1f} ms forward+backward (batch {min(unit.batch_size, GRAD_BATCH)})"
             + (f", {unit.classify_s * 1e3:.1f} ms style classifiers" if unit.classify_s else "")
             + (f", {unit.gram_s * 1e3:.1f} ms Gram matrices" if unit.gram_s else "")
             + (f", {unit.pass_s * 1e3:.1f} ms per small judged pass" if unit.pass_s else "") + "):",
             f"  {'analysis':26} {'G forwards':>11} {'fwd+bwd':>9} {'other':>9} {'estimate':>12}  note"]
    total = 0.0
    for name, c in costs.items():
        s = 0.0 if c.skip else c.seconds(unit)
        total += s
        note = f"skips: {c.skip}" if c.skip else ""
        if name in budgets and not c.skip:
            cut = any(n.startswith("budget") for n in c.notes)
            note = f"budget_s {fmt_seconds(budgets[name])}" + (": sized down" if cut else "") + (
                ", over it even at its floors" if s > budgets[name] * 1.001 else "")
        worst = [n for n in c.notes if n.startswith("up to ")] if not c.skip else []
        if worst:     # sequential random baselines: the estimate is their worst case
            note = "; ".join(x for x in (note, worst[0]) if x)
        other = c.other_s + c.judges_s(unit)   # judges included
        lines.append(f"  {name:26} {int(round(c.forwards)):>11,} {int(round(c.grads)):>9,} "
                     f"{fmt_seconds(other):>9} {fmt_seconds(s):>12}  {_clip(note, 90)}")
    lines.append(f"  {'total':26} {'':>11} {'':>9} {'':>9} {fmt_seconds(total):>12}")
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    """``text`` cut at a word boundary to fit ``width`` characters, "..." saying it was cut."""
    if len(text) <= width:
        return text
    cut = text[:width - 4].rsplit(" ", 1)[0] if " " in text[:width - 4] else text[:width - 4]
    return cut.rstrip(",;:") + " ..."


def comparison_table(estimated: dict[str, float], actual: dict[str, float]) -> str:
    """Estimate vs measured seconds per analysis and in all (printed after the run)."""
    lines = [f"  {'analysis':26} {'estimated':>12} {'actual':>12} {'actual/est':>10}"]
    te = ta = 0.0
    for name, a in actual.items():
        e = estimated.get(name, float("nan"))
        te += e if math.isfinite(e) else 0.0
        ta += a
        ratio = f"{a / e:.2f}" if math.isfinite(e) and e > 0.05 else "-"
        lines.append(f"  {name:26} {fmt_seconds(e):>12} {fmt_seconds(a):>12} {ratio:>10}")
    lines.append(f"  {'total':26} {fmt_seconds(te):>12} {fmt_seconds(ta):>12} "
                 f"{(f'{ta / te:.2f}' if te > 0.05 else '-'):>10}")
    return "\n".join(lines)
