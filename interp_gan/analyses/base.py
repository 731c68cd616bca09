"""Analysis base class and the name registry (docs/architecture.md; stylegan2-ada's ``@register_metric``).

    @register_analysis("dissection")
    class Dissection(Analysis):
        def __init__(self, *, layers=None, quantile=0.99, seed=0): ...   # stores params only
        def run(self, subject, data) -> Finding: ...

    finding = build_analysis("dissection", quantile=0.995).run(subject, data)

The constructor only stores keyword parameters (scikit-learn style); ``params()`` returns
them for provenance. ``run`` never raises for a missing capability: it returns
``Finding.skip(name, reason)``. ``estimate_cost(subject, data, unit)`` counts, from the
parameters alone, the generator passes ``run`` will make (``analyses/cost.py``), so the pipeline
can say what a run costs before it starts.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from torch import Tensor

from interp_gan.analyses.cost import Cost, UnitCosts
from interp_gan.findings import Finding
from interp_gan.harvest.layout import ensure_probed

__all__ = ["Analysis", "AnalysisData", "register_analysis", "build_analysis", "list_analyses", "get_analysis",
           "section_meta"]

_ANALYSES: dict[str, type["Analysis"]] = {}


@dataclass
class AnalysisData:
    """The images an analysis runs on.

    content [N,3,H,W] in [-1,1]; style_ids [N] the target style each content image is
    generated toward (balanced over styles); z [N, latent_dim] or None (seeded noise for the
    mapping network); style_images / style_labels: real style images (optional; for
    attribution on real images). fingerprint identifies the data for provenance.
    """
    content: Tensor
    style_ids: Tensor
    z: Tensor | None = None
    style_images: Tensor | None = None
    style_labels: Tensor | None = None
    fingerprint: str = ""
    batch_size: int = 16
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.content.dim() != 4 or self.content.shape[1] != 3:
            raise ValueError(f"content must be [N,3,H,W], got {tuple(self.content.shape)}")
        if len(self.style_ids) != len(self.content):
            raise ValueError(f"{len(self.style_ids)} style ids for {len(self.content)} content images")
        if self.z is not None and len(self.z) != len(self.content):
            raise ValueError(f"{len(self.z)} z rows for {len(self.content)} content images")

    def __len__(self) -> int:
        return len(self.content)

    def batches(self, batch_size: int | None = None) -> Iterator[tuple[slice, Tensor, Tensor, Tensor | None]]:
        """Yield (slice, content, style_ids, z) batches in order."""
        bs = batch_size or self.batch_size
        for i in range(0, len(self), bs):
            s = slice(i, min(i + bs, len(self)))
            yield s, self.content[s], self.style_ids[s], None if self.z is None else self.z[s]

    def subset(self, n: int) -> "AnalysisData":
        return AnalysisData(self.content[:n], self.style_ids[:n], None if self.z is None else self.z[:n],
                            self.style_images, self.style_labels, self.fingerprint, self.batch_size, self.extra)


class Analysis:
    name: str = ""
    # set by @register_analysis: how the report shows the Finding, and the contract test's fast settings
    title: str = ""
    order: int = 100
    references: tuple[str, ...] = ()
    fast: dict[str, Any] = {}
    # True: run() is a collective under torch.distributed -- every rank calls it on its shard of
    # the images and all ranks return the merged Finding (pipeline.run_analyses, docs/scaling.md)
    sharded: bool = False

    def params(self) -> dict[str, Any]:
        """The constructor's keyword parameters, as stored on self."""
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self" and hasattr(self, k)}

    def check_params(self) -> None:
        """Raise one ``ValueError`` line for parameters no model could make right; ``build_analysis`` calls it,
        so ``analyze`` refuses them before it loads a model. This default accepts everything."""

    def run(self, subject, data: AnalysisData) -> Finding:  # pragma: no cover - interface
        raise NotImplementedError

    def estimate_cost(self, subject, data: AnalysisData, unit: UnitCosts) -> Cost:
        """What ``run(subject, data)`` will cost: images through the generator (forwards, forward+
        backward) and other seconds, counted from the parameters (``analyses/cost.py``); a
        ``Cost(skip=reason)`` when it will skip. This default (an analysis without a cost model)
        assumes one pass over the images."""
        return Cost(forwards=len(data), notes=["no cost model: one generator pass over the images assumed"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


def register_analysis(name: str, *, title: str = "", order: int = 100, references: tuple[str, ...] = (),
                      fast: dict[str, Any] | None = None) -> Callable[[type[Analysis]], type[Analysis]]:
    """Register an analysis class under ``name`` (refuses duplicates).

    ``title`` / ``order`` / ``references`` (BibTeX keys of ``reporting.references``) say how the report
    shows its Finding; every Finding it returns carries them (``Finding.section``), so a saved report
    re-renders without this code. ``fast`` are small settings for the tiny seeded model of
    ``tests/conftest.py``: the contract test runs every registered analysis with them, so a new
    analysis is this one file plus its own test.
    """
    def deco(cls: type[Analysis]) -> type[Analysis]:
        if name in _ANALYSES:
            raise ValueError(f"analysis {name!r} is already registered (by {_ANALYSES[name].__qualname__})")
        if fast is None:
            raise ValueError(f"register_analysis({name!r}) needs fast=dict(...): small settings the contract "
                             "test runs it with on the tiny model of tests/conftest.py")
        cls.name, cls.title, cls.order = name, title or name.replace("_", " ").capitalize(), order
        cls.references, cls.fast = tuple(references), dict(fast)
        run = cls.__dict__.get("run")
        if run is not None:
            @functools.wraps(run)
            def stamped(self, subject, data, *args, **kw):
                ensure_probed(subject, data)    # each layer's calls and output layout (harvest/layout.py), once
                finding = run(self, subject, data, *args, **kw)
                if isinstance(finding, Finding) and not finding.section:
                    finding.section = section_meta(type(self))     # a subclass' own registration
                return finding
            cls.run = stamped
        _ANALYSES[name] = cls
        return cls
    return deco


def section_meta(cls: type[Analysis]) -> dict[str, Any]:
    """What the report needs to place and cite an analysis' Finding."""
    return {"title": cls.title, "order": cls.order, "references": list(cls.references)}


def _unknown_analysis(name: str) -> LookupError:
    hint = difflib.get_close_matches(name, list(_ANALYSES), n=1)
    return LookupError(f"unknown analysis {name!r}; registered: {', '.join(sorted(_ANALYSES))}"
                       + (f"; did you mean {hint[0]!r}?" if hint else ""))


def get_analysis(name: str) -> type[Analysis]:
    if name not in _ANALYSES:
        raise _unknown_analysis(name)
    return _ANALYSES[name]


def build_analysis(name: str, **params) -> Analysis:
    if name not in _ANALYSES:
        raise _unknown_analysis(name)
    cls = _ANALYSES[name]
    sig = inspect.signature(cls.__init__).parameters
    known = [p for p in sig if p != "self"]
    unknown = sorted(set(params) - set(known))
    if unknown and not any(sig[p].kind == inspect.Parameter.VAR_KEYWORD for p in known):
        hints = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
        said = ", ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in hints.items())
        raise ValueError(f"unknown parameter(s) for analysis {name!r}: {said}; known: {', '.join(known)}")
    params = {k: _typed(cls, name, k, v) for k, v in params.items()}
    for k, v in params.items():
        _in_range(name, k, v)
    try:
        analysis = cls(**params)
    except TypeError as e:
        raise ValueError(f"bad parameters for analysis {name!r}: {e}") from None
    analysis.check_params()
    return analysis


# Parameters whose names mean the same in every analysis, and the values they accept (issue #16:
# n_perm = 0 would divide by zero deep inside; a quantile of 1.5 would silently threshold nothing).
_RANGES: dict[str, tuple[str, Callable[[float], bool]]] = {
    "n_perm": (">= 1", lambda v: v >= 1), "n_boot": (">= 1", lambda v: v >= 1),
    "batch_size": (">= 1", lambda v: v >= 1), "n_images": (">= 1", lambda v: v >= 1),
    "iou_threshold": ("in [0, 1]", lambda v: 0 <= v <= 1), "quantile": ("in (0, 1)", lambda v: 0 < v < 1),
    "alpha": ("in (0, 1)", lambda v: 0 < v < 1),
    "control_draws": ("an integer >= 1 (random-init draws; 3 or more for a 'beyond random init' verdict)",
                      lambda v: v >= 1 and float(v).is_integer()),
}


def _in_range(name: str, key: str, value: Any) -> None:
    rule = _RANGES.get(key)
    if rule is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not rule[1](value):
        raise ValueError(f"analysis {name!r}: {key} = {value!r}; expected {rule[0]}")


def _typed(cls: type, name: str, key: str, value: Any) -> Any:
    """``value`` checked against the constructor's annotation when that is int / float / bool / str
    (optionally ``| None``), so a TOML typo fails before the model loads, naming the parameter."""
    from interp_gan.config import coerce_scalar
    try:
        hint = typing.get_type_hints(cls.__init__).get(key)
    except Exception:                                                 # unresolvable annotation: no check
        return value
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    if value is None and type(None) in options:
        return value
    choices = [c for o in options if typing.get_origin(o) is typing.Literal for c in typing.get_args(o)]
    if choices:                                                       # a named choice: one of these values
        if value in choices:
            return value
        hint_ = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        raise ValueError(f"analysis {name!r}: {key} = {value!r}; expected one of {', '.join(map(repr, choices))}"
                         + (f" (did you mean {hint_[0]!r}?)" if hint_ else ""))
    scalars = [t for t in options if t in (int, float, bool, str)]
    if len(scalars) != len([t for t in options if t is not type(None)]) or not scalars:
        return value                                                  # not a plain scalar parameter
    for t in scalars:
        try:
            return coerce_scalar(value, t, key)
        except ValueError:
            pass
    raise ValueError(f"analysis {name!r}: {key} = {value!r} ({type(value).__name__}); expected "
                     + " or ".join(t.__name__ for t in scalars))


def list_analyses() -> list[str]:
    return sorted(_ANALYSES)
