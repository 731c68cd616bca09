"""Frozen, typed configuration that round-trips through JSON / TOML (nanoGPT ``GPTConfig`` idea).

    recipe = load_recipe("training/demo.toml", overrides=["train.steps=100"])
    recipe.to_dict() == Recipe.from_dict(recipe.to_dict()).to_dict()   # round trip

Validation raises ``ValueError`` naming the field, what was got and what is allowed.
Loading has no side effects.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

__all__ = ["DataConfig", "ModelConfig", "TrainConfig", "Recipe", "AnalysisSpec", "PipelineConfig",
           "load_recipe", "load_pipeline", "apply_overrides", "coerce_scalar", "check_feature_net"]


def _check_literal(obj: Any) -> None:
    hints = get_type_hints(type(obj))
    for f in fields(obj):
        t = hints[f.name]
        if get_origin(t) is Literal and getattr(obj, f.name) not in get_args(t):
            raise ValueError(f"{type(obj).__name__}.{f.name} = {getattr(obj, f.name)!r}; "
                             f"expected one of {list(get_args(t))}")


def coerce_scalar(v: Any, t: type, what: str) -> Any:
    """v as type t (an int is a valid float, a bool is not an int), or a ValueError naming ``what``."""
    if t is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, t) and (t is bool or not isinstance(v, bool)):
        return v
    raise ValueError(f"{what} = {v!r} ({type(v).__name__}); expected {t.__name__}")


def check_feature_net(owner: str, v: Any) -> str:
    """"random" or "vgg19:<path>" (the file is not opened here: loading a config has no side effects)."""
    if v == "random" or (isinstance(v, str) and v.startswith("vgg19:") and v[len("vgg19:"):].strip()):
        return v
    raise ValueError(f"{owner} = {v!r}; expected \"random\" or \"vgg19:<path to a local vgg19 state_dict>\"")


class _Config:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        d = dict(d or {})
        hints = get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            import difflib
            hints = [f"{h[0]!r} for {u!r}" for u in sorted(unknown) if (h := difflib.get_close_matches(u, known, n=1))]
            said = f" (did you mean {', '.join(hints)}?)" if hints else ""
            raise ValueError(f"unknown key(s) {sorted(unknown)} for {cls.__name__}{said}; known: {sorted(known)}")
        kwargs = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v, t = d[f.name], hints[f.name]
            if isinstance(t, type) and issubclass(t, _Config):
                v = t.from_dict(v)
            elif get_origin(t) is tuple and isinstance(v, list):
                v = tuple(v)
            elif t in (int, float, bool, str):
                v = coerce_scalar(v, t, f"{cls.__name__}.{f.name}")
            kwargs[f.name] = v
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass(frozen=True)
class DataConfig(_Config):
    source: str = "embedded"            # "embedded", a style folder, or a CycleGAN folder
    content: str = ""                   # content folder (folder sources only)
    styles: tuple[str, ...] = ()        # style names to use (empty = all)
    image_size: int = 64
    load_size: int = 80                 # images are kept at this size; training random-crops image_size
    max_bad_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.image_size < 16 or self.load_size < self.image_size:
            raise ValueError(f"need 16 <= image_size <= load_size, got {self.image_size}, {self.load_size}")
        if not 0 <= self.max_bad_fraction < 1:
            raise ValueError(f"max_bad_fraction must be in [0,1), got {self.max_bad_fraction}")


@dataclass(frozen=True)
class ModelConfig(_Config):
    name: Literal["stylenet"] = "stylenet"
    ch: int = 32
    n_down: int = 2
    n_blocks: int = 4
    style_dim: int = 64
    latent_dim: int = 16
    style_encoder: bool = False
    d_ch: int = 32
    d_layers: int = 4

    def __post_init__(self) -> None:
        _check_literal(self)
        for k in ("ch", "n_blocks", "style_dim", "latent_dim", "d_ch", "d_layers"):
            if getattr(self, k) < 1:
                raise ValueError(f"ModelConfig.{k} must be >= 1, got {getattr(self, k)}")


@dataclass(frozen=True)
class TrainConfig(_Config):
    steps: int = 1000
    batch_size: int = 8
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.99
    adv_loss: Literal["nonsaturating", "hinge", "lsgan"] = "nonsaturating"
    w_adv: float = 1.0
    w_cls: float = 1.0
    w_style: float = 1.0        # Gram loss on full images (the seed's ||f(s) - f(g)||^2)
    w_style_hp: float = 1.0     # Gram loss on high-passed images (texture, not palette)
    w_content: float = 1.0
    w_r1: float = 1.0
    ema: float = 0.999
    feature_seed: int = 1234    # seed of the fixed random feature network f
    feature_net: str = "random"  # f: "random" (seeded by feature_seed) or "vgg19:<path to a local vgg19 state_dict>"
    eval_every: int = 250
    eval_images: int = 64
    sample_every: int = 250
    checkpoint_every: int = 500
    keep_every: int = 0         # > 0: also keep steps/step_XXXXXX.safetensors every this many steps (docs/dynamics.md)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True           # autocast on CUDA only
    log_every: int = 10         # metrics.jsonl loss lines every this many steps
    clf_steps: int = 300        # training steps of each independent evaluation classifier
    clf_ch: int = 32            # width of the evaluation classifiers

    def __post_init__(self) -> None:
        _check_literal(self)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0,1), got {self.ema}")
        for k in ("checkpoint_every", "log_every", "eval_every", "sample_every", "eval_images", "clf_steps", "clf_ch"):
            if getattr(self, k) < 1:
                raise ValueError(f"train.{k} must be >= 1, got {getattr(self, k)}")
        if self.keep_every < 0:
            raise ValueError(f"train.keep_every must be >= 0 (0: keep no step snapshots), got {self.keep_every}")
        check_feature_net("TrainConfig.feature_net", self.feature_net)


@dataclass(frozen=True)
class Recipe(_Config):
    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        # the generator halves the image n_down times and doubles it back: it must divide evenly
        f = 2 ** self.model.n_down
        if self.model.n_down < 0 or self.data.image_size % f or self.data.image_size // f < 4:
            raise ValueError(f"model.n_down = {self.model.n_down} does not fit data.image_size = "
                             f"{self.data.image_size}: the image size must be a multiple of 2**n_down = {f} "
                             f"and leave at least 4 px at the bottleneck")


@dataclass(frozen=True)
class AnalysisSpec(_Config):
    name: str = ""
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineConfig(_Config):
    """What ``interp-gan analyze`` runs: data sample sizes and the list of analyses."""
    name: str = "analysis"
    n_images: int = 64
    image_size: int = 64
    batch_size: int = 16
    seed: int = 0
    data: str = "embedded"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    analyses: tuple[AnalysisSpec, ...] = ()
    feature_net: str = ""   # "" = the subject's own f; "random" or "vgg19:<path>" = use this f for Gram distances
    # "auto": a subject without the two independent style classifiers (an ONNX network, a third-party
    # checkpoint) gets them trained (cached) on the data's real images of its styles; "none": never
    classifiers: Literal["auto", "none"] = "auto"
    budget_s: float = 0.0   # > 0: seconds shared among the analyses that size themselves (docs/scaling.md)
    max_bad_fraction: float = 0.2   # --data DIR: more unreadable images than this in a folder stops the run
    # --data DIR: real images read per style, a seeded sample beyond (classifiers: ~400 to train on, ~100 held out)
    style_images_per_style: int = 512

    def __post_init__(self) -> None:
        _check_literal(self)
        if not 0 <= self.max_bad_fraction < 1:
            raise ValueError(f"max_bad_fraction must be in [0,1), got {self.max_bad_fraction}")
        if self.n_images < 2:
            raise ValueError(f"n_images must be >= 2, got {self.n_images}")
        if self.style_images_per_style < 2:
            raise ValueError(f"style_images_per_style must be >= 2 (the style classifiers hold one out), "
                             f"got {self.style_images_per_style}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if self.feature_net:
            check_feature_net("PipelineConfig.feature_net", self.feature_net)
        if self.budget_s < 0:
            raise ValueError(f"budget_s must be >= 0 seconds (0: no budget), got {self.budget_s}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PipelineConfig":
        d = dict(d or {})
        specs = d.pop("analyses", [])
        if isinstance(specs, dict):  # TOML tables: [analyses.dissection] params...
            specs = [{"name": k, "params": v} for k, v in specs.items()]
        obj = super().from_dict(d)
        return dataclasses.replace(obj, analyses=tuple(AnalysisSpec.from_dict(s) for s in specs))


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # bare string


def apply_overrides(d: dict[str, Any], overrides: list[str] | None, example: str = "train.steps=100") -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as TOML, else kept as strings); ``example`` is the
    one a malformed item's error shows."""
    d = json.loads(json.dumps(d))
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value (e.g. {example}), got {item!r}")
        key, text = item.split("=", 1)
        node = d
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {p!r} is not a section")
        node[parts[-1]] = _parse_value(text.strip())
    return d


def _read_toml(path: str | Path, what: str = "recipe") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such {what} file: {p}")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{p} is not valid TOML: {e}") from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    return Recipe.from_dict(apply_overrides(_read_toml(path), overrides))


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    return PipelineConfig.from_dict(apply_overrides(_read_toml(path, "pipeline"), overrides, "n_images=32"))
