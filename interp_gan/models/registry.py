"""Name -> model class registry (torchvision ``register_model`` style).

    @register_model("stylenet")
    class StyleNet(nn.Module): ...
    G = build_model("stylenet", num_styles=4)
"""
from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["register_model", "build_model", "list_models"]

_MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered (by {_MODELS[name].__qualname__})")
        _MODELS[name] = cls
        return cls
    return deco


def build_model(name: str, **kwargs) -> nn.Module:
    if name not in _MODELS:
        raise LookupError(f"unknown model {name!r}; registered: {', '.join(sorted(_MODELS))}")
    return _MODELS[name](**kwargs)


def list_models() -> list[str]:
    return sorted(_MODELS)
