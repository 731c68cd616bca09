"""The random-init control's re-draw: a generator put back to the initialisation of its own
architecture, and an account of what stayed trained.

    trained = {k: v.detach().clone() for k, v in G.state_dict().items()}
    r = redraw(G, seed=0, trained=trained)       # in place; ``Subject.random_init`` restores afterwards
    r.kept                                       # {state_dict name: values} still at their trained values
    r.notes()                                    # the sentences a Finding carries about it

The control asks what an untrained network of the same architecture does on the same data (GAN
Dissection's baseline, Bau et al., ICLR 2019), so "as constructed" is the target:

1. every module with ``reset_parameters`` calls it (PyTorch's default initialisation;
   ``nn.MultiheadAttention``, whose reset is private, its ``_reset_parameters``). Our own
   modules reset their learned buffers there too: StyleGAN2's tracked average ``mapping.w_avg``
   goes back to zeros and its per-layer noise maps are drawn afresh, as at construction;
   ``nn.BatchNorm``'s own reset zeroes the running statistics;
   A parametrized tensor (``torch.nn.utils.parametrizations.spectral_norm``, ``weight_norm``,
   ``orthogonal``) is drawn as its module's reset draws it and set through the parametrization's
   ``right_inverse`` (the reset alone writes into a computed tensor and leaves the original
   trained); spectral norm's power-iteration vectors ``_u`` / ``_v`` are drawn again and iterated 15
   times on the new weight, as at construction. The older hook-based wrappers
   (``torch.nn.utils.spectral_norm`` / ``weight_norm``, which keep ``weight_orig`` + ``weight_u`` /
   ``weight_v``, or ``weight_g`` + ``weight_v``, and compute ``weight`` in a forward pre-hook) get the
   same: the reset's draw is written into their stored tensors (spectral norm: ``weight_orig``, u and v
   drawn again and iterated 15 times; weight norm: g = the draw's norm, v = the draw);
2. float buffers a module names in ``random_init_tables`` (learned tables that no module can
   reset, e.g. the per-style scale and shift tables of conditional instance norm that onnx2torch
   keeps as buffers) are re-drawn i.i.d. from a Gaussian with that table's own trained mean and
   standard deviation (seeded): the scale of the activations stays that of the trained network,
   the style pathway becomes random (the counterpart of a random style embedding);
3. float buffers a module names in ``random_init_constants`` are fixed by the architecture, not
   learned (a resampling filter, an epsilon, a Resize scale) and stay as they are;
4. the children a model names in ``auxiliary_modules`` (networks that compute part of the generator's
   input, e.g. StarGAN v2's face-landmark network for its w_hpf masks) are not re-drawn: they are
   instruments, like the classifiers, so the control's generator sees the same masks;
   ``auxiliary`` counts their values and ``notes()`` says so, with the generator's ``auxiliary_note`` as the
   reason when it gives one (pytorch-AdaIN: its VGG encoder is a fixed feature net, never trained);
5. every other float state_dict entry that steps 1-3 did not write keeps its trained value:
   ``kept`` names it, a ``UserWarning`` says so, and the unit analyses put ``notes()`` in their
   Findings so the report prints it beside the random-init comparison.

An entry counts as written when its tensor's in-place version counter moved, its storage was
replaced, or its values changed; a re-draw that writes through ``.data`` and happens to produce the
trained values again (an untrained zero bias) is counted as kept, the safe side.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["Redraw", "redraw", "KEPT_PREFIX"]

KEPT_PREFIX = "random-init control keeps"     # the note the report sections look for


@dataclass(frozen=True)
class Redraw:
    """What one re-draw did: state_dict names -> number of values, per outcome."""
    kept: dict[str, int] = field(default_factory=dict)        # still trained (nothing could re-draw them)
    tables: dict[str, int] = field(default_factory=dict)      # learned tables re-drawn from N(mean, std)
    constants: dict[str, int] = field(default_factory=dict)   # fixed by the architecture, left as they are
    auxiliary: dict[str, int] = field(default_factory=dict)   # auxiliary_modules' entries, left trained on purpose
    auxiliary_why: str = ""       # the generator's ``auxiliary_note``: why they stay trained (else the generic reason)

    def notes(self) -> list[str]:
        out = []
        if self.kept:
            names = list(self.kept)
            out.append(f"{KEPT_PREFIX} {sum(self.kept.values())} trained value(s) in {len(names)} tensor(s) that "
                       f"it cannot re-draw ({', '.join(names[:4])}{' ...' if len(names) > 4 else ''}): it is a "
                       f"partly trained network, not a random one")
        if self.tables:
            out.append(f"random-init control re-draws {len(self.tables)} learned table(s) held as buffers "
                       f"({sum(self.tables.values())} values) from a Gaussian with each table's own trained mean "
                       f"and standard deviation")
        if self.auxiliary:
            nets = sorted({k.split(".")[0] for k in self.auxiliary})
            why = self.auxiliary_why or "it computes part of the generator's input (e.g. face masks), not the generator"
            out.append(f"random-init control leaves {', '.join(nets)} trained ({sum(self.auxiliary.values())} "
                       f"values): {why}")
        return out


def _auxiliary(G: nn.Module) -> tuple[str, ...]:
    """The ``auxiliary_modules`` of G and its children, as G's module names."""
    out = []
    for prefix, m in G.named_modules():
        out += [f"{prefix}.{a}" if prefix else a for a in getattr(m, "auxiliary_modules", ()) or ()]
    return tuple(out)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _declared(G: nn.Module, attr: str) -> set[str]:
    """The buffers modules name in ``attr`` (their own names), as ``G.state_dict()`` names."""
    out = set()
    for prefix, m in G.named_modules():
        for b in getattr(m, attr, ()) or ():
            out.add(f"{prefix}.{b}" if prefix else b)
    return out


def _redraw_table(t: Tensor, g: torch.Generator) -> None:
    v = t.detach().double()
    mean, std = float(v.mean()), float(v.std(unbiased=False)) if v.numel() > 1 else 0.0
    t.copy_((torch.randn(t.shape, generator=g, dtype=torch.float64) * std + mean).to(t))


def _fresh_unit_vectors(u: Tensor, v: Tensor, eps: float) -> None:
    """Spectral norm's power-iteration vectors drawn again, as at construction."""
    for vec in (u, v):
        vec.normal_(0, 1)
        vec.copy_(F.normalize(vec, dim=0, eps=eps))


def _redraw_parametrized(m: nn.Module) -> None:
    """Each parametrized tensor of ``m`` at what ``m.reset_parameters`` draws for it, set through its
    parametrization (module docstring, step 1)."""
    plain = copy.deepcopy(m)      # made plain by hand: remove_parametrizations edits the class m shares
    values = {pname: getattr(m, pname).detach().clone() for pname in m.parametrizations}
    del plain._modules["parametrizations"]
    plain.__class__ = type(m).__bases__[0]
    for pname, v in values.items():
        plain.register_parameter(pname, nn.Parameter(v))
    plain.reset_parameters()                         # the draw, into plain tensors
    for pname, plist in m.parametrizations.items():
        try:
            plist.right_inverse(getattr(plain, pname).detach())
        except (NotImplementedError, RuntimeError):   # a parametrization without a right inverse: kept, said
            continue
        for p in plist:                                # spectral norm: u, v as at construction
            if all(hasattr(p, a) for a in ("_u", "_v", "_power_method", "_reshape_weight_to_matrix")):
                _fresh_unit_vectors(p._u, p._v, p.eps)
                p._power_method(p._reshape_weight_to_matrix(plist.original), 15)


def _redraw_hooked(m: nn.Module) -> None:
    """The hook-based spectral / weight norm of ``m`` (module docstring, step 1): ``reset_parameters``
    drew into the computed ``weight`` attribute, which the next forward overwrites; the draw is
    written into the tensors the hook computes it from."""
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm, norm_except_dim
    for hook in list(m._forward_pre_hooks.values()):
        if isinstance(hook, SpectralNorm):
            w = getattr(m, hook.name).detach().clone()
            getattr(m, hook.name + "_orig").copy_(w)
            u, v = getattr(m, hook.name + "_u"), getattr(m, hook.name + "_v")
            mat = hook.reshape_weight_to_matrix(w)
            _fresh_unit_vectors(u, v, hook.eps)
            for _ in range(15):
                v.copy_(F.normalize(torch.mv(mat.t(), u), dim=0, eps=hook.eps))
                u.copy_(F.normalize(torch.mv(mat, v), dim=0, eps=hook.eps))
            setattr(m, hook.name, hook.compute_weight(m, do_power_iteration=False))
        elif isinstance(hook, WeightNorm):
            w = getattr(m, hook.name).detach().clone()
            getattr(m, hook.name + "_g").copy_(norm_except_dim(w, 2, hook.dim))
            getattr(m, hook.name + "_v").copy_(w)


@torch.no_grad()
def redraw(G: nn.Module, seed: int, trained: dict[str, Tensor]) -> Redraw:
    """Re-draw ``G`` in place at its initialisation (module docstring) from the global RNG as the
    caller seeded it and a CPU generator seeded with ``seed`` for the tables; ``trained`` is
    ``G.state_dict()`` as it was (compared against). Returns what stayed trained."""
    live = G.state_dict(keep_vars=True)
    before = {k: (v._version, v.data_ptr()) for k, v in live.items() if v.is_floating_point()}
    aux = _auxiliary(G)
    for name, m in G.named_modules():
        reset = getattr(m, "reset_parameters", None)
        if reset is None and isinstance(m, nn.MultiheadAttention):   # its own reset is private: in_proj_*, biases
            reset = m._reset_parameters
        if callable(reset) and not _under(name, aux):
            reset()
        if callable(reset) and not _under(name, aux) and parametrize.is_parametrized(m):
            _redraw_parametrized(m)
        if callable(reset) and not _under(name, aux) and m._forward_pre_hooks:
            _redraw_hooked(m)
    tables, constants = _declared(G, "random_init_tables"), _declared(G, "random_init_constants")
    live = G.state_dict(keep_vars=True)
    g = torch.Generator().manual_seed(int(seed))
    redrawn = {}
    for name in sorted(tables):
        if name not in live or not live[name].is_floating_point():
            raise LookupError(f"random_init_tables names {name!r}, which is not a float buffer of the generator")
        _redraw_table(live[name], g)
        redrawn[name] = live[name].numel()
    kept, fixed, auxiliary = {}, {}, {}
    for name, (version, ptr) in before.items():
        t = live.get(name)
        if name in redrawn or t is None or not t.numel():
            continue
        if _under(name, aux):
            auxiliary[name] = t.numel()
        elif name in constants:
            fixed[name] = t.numel()
        elif t._version == version and t.data_ptr() == ptr and torch.equal(t, trained[name]):
            kept[name] = t.numel()
    return Redraw(kept=kept, tables=redrawn, constants=fixed, auxiliary=auxiliary,
                  auxiliary_why=str(getattr(G, "auxiliary_note", "") or "") if auxiliary else "")
