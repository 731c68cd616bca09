"""Harvest (stage ⑤ of docs/architecture.md): hooks on any nn.Module, streaming mergeable per-unit
statistics, the activation store, and the distributed merge that makes sharded runs exact.

    from interp_gan.harvest import Trace, TraceDict, harvest
"""
from interp_gan.harvest.hooks import Trace, TraceDict, resolve_layers, spatial_layers
from interp_gan.harvest.store import ActivationStore, harvest

__all__ = ["Trace", "TraceDict", "resolve_layers", "spatial_layers", "ActivationStore", "harvest"]
