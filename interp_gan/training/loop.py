"""Train the multi-style GAN: one function, top to bottom (nanoGPT ``train.py`` style).

    ckpt = train(load_recipe("training/demo.toml"), Path("runs/demo"))
    ckpt = train(recipe_with_more_steps, Path("runs/demo"), resume=True)   # continues exactly

Writes into ``out_dir`` (refused if it already holds files, unless ``resume=True``):
``config.json`` (the recipe, before the first step), ``metrics.jsonl`` (losses every
``log_every`` steps, eval metrics every ``eval_every``), ``samples/step_XXXXXX.png`` (rows:
content photos; columns: the photo, then each style; top row: a real image of each style),
``checkpoint.safetensors`` + ``trainer_state.pt`` every ``checkpoint_every`` steps and at the
end; with ``keep_every`` > 0 also ``steps/step_XXXXXX.safetensors`` (the same checkpoint, kept) at
step 0, every ``keep_every`` steps and at the end (docs/dynamics.md). On CPU a seeded run repeats bit for bit, and N steps + resume + M steps equals N + M steps:
every random draw comes from one ``torch.Generator`` whose state is saved, and the torch /
numpy / python RNG states are saved too. On CUDA: bf16 autocast and channels_last.

Each step: sample content crops, target style ids, z and real crops of the target styles;
D step (adversarial + style classification on real + R1 on real); G step (adversarial + style
classification + Gram loss on full and on high-passed images vs per-style mean Grams of real
images + content loss); EMA of G. Prints only the tqdm bar and a one-line summary.

Under ``torchrun`` (docs/scaling.md; ``interp-gan train`` sets up the process group) every rank
draws the same global batch of ``batch_size`` from the seeded generator and trains on its own
contiguous 1/W of it; gradients are averaged over the ranks before each optimizer step
(``distributed.average_gradients``). Every loss term is a mean of per-sample terms (no
BatchNorm in G or D; InstanceNorm / AdaIN, R1, the Gram and content losses are per image), so
the mean of the ranks' gradients is the full-batch gradient and an N-process run equals the
one-process run of the same recipe up to float rounding. The training amplifies rounding step by
step: on the demo recipe, 2 processes and 1 process differ after 2 steps (~1e-3 in G's output)
as much as two 1-process runs with 1 and 2 OpenMP threads. Rank 0 alone writes files, evaluates
and draws samples; logged losses are means over the ranks; every rank reads
``trainer_state.pt`` on resume (the run directory must be on a file system all ranks share).
"""
from __future__ import annotations

import copy
import json
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from interp_gan.config import Recipe
from interp_gan.models import build_feature_net
from interp_gan.training import losses as L
from interp_gan.guards import remove_stale_tmp
from interp_gan.util import atomic_write, resolve_device
from interp_gan.checkpoint import (SNAPSHOT_DIR, build_discriminator, build_generator, check_shapes,
                                   list_snapshots, load_trainer_state, save_checkpoint, save_trainer_state,
                                   snapshot_path)
from interp_gan.training.classifiers import train_classifiers
from interp_gan.distributed import barrier, is_main, local_device, main_first, main_only, rank, world_size
from interp_gan.training.distributed import average_gradients, check_in_sync, mean_across_ranks
from interp_gan.training.evaluation import evaluate
from interp_gan.training.sampling import crop_batch, per_style_index, sample_style_indices
from interp_gan.training.samples import save_sample_grid

__all__ = ["train", "Callback"]

Callback = Callable[[int, dict], None]   # called as cb(step, logs) after every logged step
_RESUMABLE_CHANGES = {("train", "steps"), ("train", "device"), ("train", "eval_every"),
                      ("train", "sample_every"), ("train", "checkpoint_every"), ("train", "keep_every")}
_LOSSES = ("loss_d", "d_adv", "d_cls", "r1", "loss_g", "g_adv", "g_cls", "g_style", "g_style_hp", "g_content")


# --- RNG state as tensors and ints (torch.load(weights_only=True) refuses numpy objects) --------
def _rng_state(gen: torch.Generator) -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {"torch": torch.get_rng_state(), "data": gen.get_state(),
             "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2]),
             "numpy_has_gauss": int(np_state[3]), "numpy_gauss": float(np_state[4]),
             "python_version": int(py_state[0]), "python": torch.tensor(py_state[1], dtype=torch.int64),
             "python_gauss": py_state[2]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["data"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _never_stepped(out_dir: Path) -> bool:
    """Only ``config.json`` (and stale temp files): a start that failed before the first step (a bad
    style name, a missing VGG file, no GPU) -- the same command may start it again."""
    return all(p.name == "config.json" or (p.name.startswith(".") and p.name.endswith(".tmp"))
               for p in out_dir.iterdir())


def _check_out_dir(recipe: Recipe, out_dir: Path, resume: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file; give a folder for the run")
    busy = out_dir.exists() and any(out_dir.iterdir()) and not (not resume and _never_stepped(out_dir))
    if busy and not resume:
        raise FileExistsError(f"{out_dir} already holds a run; a run directory is never overwritten. "
                              f"Pass a new --out, or resume=True (--resume) to continue it")
    if resume:
        if not (out_dir / "trainer_state.pt").is_file():
            raise FileNotFoundError(f"cannot resume: {out_dir / 'trainer_state.pt'} does not exist")
        # through Recipe, so a key added to the config since the run started reads as its default
        old = json.loads(Recipe.from_dict(json.loads((out_dir / "config.json").read_text())).to_json())
        new = json.loads(recipe.to_json())
        diffs = [(s, k) for s in new for k in (new[s] if isinstance(new[s], dict) else [None])
                 if (old.get(s, {}).get(k) if k else old.get(s)) != (new[s][k] if k else new[s])]
        bad = [d for d in diffs if d not in _RESUMABLE_CHANGES and d != ("name", None)]
        if bad:
            raise ValueError(f"cannot resume {out_dir} with a different recipe: {['.'.join(filter(None, d)) for d in bad]} "
                             f"changed; only {sorted('.'.join(d) for d in _RESUMABLE_CHANGES)} may change on resume")


def _start_run_dir(recipe: Recipe, out_dir: Path, resume: bool) -> None:
    """Refuse a busy (or, on resume, a mismatched) run dir, then write ``config.json`` first."""
    remove_stale_tmp(out_dir)      # left by an atomic write that was killed
    _check_out_dir(recipe, out_dir, resume)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "config.json", lambda fh: fh.write(recipe.to_json().encode()))


def _local_batch_size(batch_size: int, world: int) -> int:
    """Each of ``world`` processes trains on an equal share of the global batch."""
    if batch_size % world:
        raise ValueError(f"train.batch_size {batch_size} is not divisible by the {world} processes; set "
                         f"train.batch_size to a multiple of {world} or change --nproc_per_node")
    return batch_size // world


def _draw_batch(gen: torch.Generator, data, by_style: list, batch_size: int, size: int, num_styles: int,
                latent_dim: int) -> tuple[torch.Tensor, ...]:
    """The global batch (content crops, target ids, z, real crops of the targets), all from ``gen``.

    Every rank draws all of it, so the generator advances identically everywhere and the
    ranks' shares together are exactly the batch a single process trains on.
    """
    c_idx = torch.randint(0, len(data.content), (batch_size,), generator=gen)
    content = crop_batch(data.content, c_idx, size, gen)                       # [B,3,H,W]
    target = torch.randint(0, num_styles, (batch_size,), generator=gen)       # [B]
    z = torch.randn(batch_size, latent_dim, generator=gen)                    # [B,Z]
    real = crop_batch(data.style, sample_style_indices(by_style, target, gen), size, gen)
    return content, target, z, real


def _share(batch: tuple[torch.Tensor, ...], rank: int, world: int) -> tuple[torch.Tensor, ...]:
    """This rank's contiguous slice of every tensor of the global batch."""
    n = len(batch[0]) // world
    return tuple(x[rank * n:(rank + 1) * n] for x in batch)


def _append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")


def train(recipe: Recipe, out_dir: str | Path, resume: bool = False, callbacks: Sequence[Callback] = (),
          data=None, progress: bool = True) -> Path:
    """Train ``recipe`` into ``out_dir``; returns the path of ``checkpoint.safetensors``.

    ``data``: a ``StyleData`` to train on (default: ``load_data(recipe.data)``); under torchrun
    every rank must pass the same data. ``callbacks`` run on rank 0 only.
    """
    cfg, out_dir = recipe.train, Path(out_dir)
    world, me = world_size(), rank()
    local_batch = _local_batch_size(cfg.batch_size, world)
    device = local_device(resolve_device(cfg.device))   # no GPU for --device cuda: said before config.json
    done = _finished(recipe, out_dir) if resume else None
    if done is not None:   # a no-op resume of a finished run leaves every file as it is
        if is_main():
            print(f"{recipe.name}: {out_dir} already finished at step {done[1]} (train.steps = {cfg.steps}); "
                  f"nothing to do -> {done[0]}")
        return done[0]
    main_only(lambda: _start_run_dir(recipe, out_dir, resume))   # the others wait: no race on the dir
    cuda = device.type == "cuda"
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and cfg.bf16)
    fmt = torch.channels_last if cuda else torch.contiguous_format
    t_start = time.perf_counter()

    # --- data, judges, models -----------------------------------------------------------------
    if data is None:
        from interp_gan.data import load_data
        data = main_first(lambda: load_data(recipe.data))      # rank 0 builds the cache, the others read it
    names, size = list(data.style_names), recipe.data.image_size
    num_styles = len(names)
    style_labels = data.style_labels.long()
    by_style = per_style_index(style_labels, num_styles)
    # Classifiers use a fixed seed: every training seed is judged by the same classifiers.
    classifiers, clf_acc = main_first(lambda: train_classifiers(data, size, steps=cfg.clf_steps, ch=cfg.clf_ch,
                                                                seed=0, device=device))
    classifiers = {k: c.to(device) for k, c in classifiers.items()}

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)          # every training draw comes from here
    G = build_generator(recipe.model.to_dict(), num_styles)
    D = build_discriminator(recipe.model.to_dict(), num_styles)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    f = build_feature_net(cfg.feature_net, seed=cfg.feature_seed)   # random, or VGG-19 from a local file
    targets = L.style_targets(f, data.style, style_labels, num_styles)  # per-style mean Grams, full images
    for m in (G, D, G_ema, f, targets):
        m.to(device=device, memory_format=fmt)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))

    step = 0
    metrics_path = out_dir / "metrics.jsonl"
    skipped_row = _skipped_images(data)
    if resume:
        st = load_trainer_state(out_dir / "trainer_state.pt")
        for key, module in (("G", G), ("D", D), ("G_ema", G_ema)):   # one line naming a misshapen key
            check_shapes(module, st[key], out_dir / "trainer_state.pt", f"{key}.")
        G.load_state_dict(st["G"]); D.load_state_dict(st["D"]); G_ema.load_state_dict(st["G_ema"])
        opt_g.load_state_dict(st["opt_g"]); opt_d.load_state_dict(st["opt_d"])
        step = int(st["step"])
        _restore_rng(st["rng"], gen)
        if is_main() and metrics_path.is_file():   # drop lines logged after the checkpoint we resume from
            rows = [ln for ln in metrics_path.read_text().splitlines() if ln.strip()]
            keep = [ln for ln in rows if _line_step(ln) <= step]
            atomic_write(metrics_path, lambda fh: fh.write("".join(ln + "\n" for ln in keep).encode()))
    if skipped_row and is_main():
        _append_jsonl(metrics_path, {"step": step, **skipped_row})
    if resume and is_main():   # snapshots past the resumed step belong to the replayed steps: rewritten below
        drop_snapshots_after(out_dir, step)

    def write_weights(path: Path, step: int, last_eval: dict | None) -> Path:
        return save_checkpoint(path, generator=G_ema, discriminator=D,
                               classifiers=classifiers, classifier_accuracy=clf_acc, feature_net=f,
                               recipe=recipe, style_names=names, step=step, fingerprint=data.fingerprint,
                               extra={"eval": last_eval, "data_source": str(getattr(data, "source", ""))})

    def save(step: int, last_eval: dict | None) -> Path:
        check_in_sync(G, D, G_ema)   # collective: what rank 0 writes is what every rank trains on
        if not is_main():
            return out_dir / "checkpoint.safetensors"
        ckpt = write_weights(out_dir / "checkpoint.safetensors", step, last_eval)
        save_trainer_state(out_dir / "trainer_state.pt", {
            "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "step": step,
            "rng": _rng_state(gen)})
        return ckpt

    def run_eval(step: int) -> dict:
        return evaluate(G_ema, data, classifiers, f, n=cfg.eval_images, seed=cfg.seed, image_size=size)

    def keep(step: int, last_eval: dict | None) -> None:
        """Step snapshot (``train.keep_every``): the same file as checkpoint.safetensors, under steps/."""
        if is_main():
            write_weights(snapshot_path(out_dir, step), step, last_eval)

    # --- the loop -------------------------------------------------------------------------------
    last_eval, train_time, ckpt, start_step = None, 0.0, None, step
    if cfg.keep_every and step == 0:   # the initialisation: where every curve starts
        keep(0, None)
    saved_step = step if resume else None
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and is_main()), dynamic_ncols=True,
               desc=recipe.name)
    while step < cfg.steps:
        t0 = time.perf_counter()
        batch = _draw_batch(gen, data, by_style, cfg.batch_size, size, num_styles, G.latent_dim)
        content, target, z, real = _share(batch, me, world)
        content, real = (x.to(device, non_blocking=True).contiguous(memory_format=fmt) for x in (content, real))
        target, z = target.to(device), z.to(device)

        # D step: adversarial (real style images vs fakes, per-style heads) + style class + R1.
        with amp:
            fake = G.generate(content, target, z)      # [B/W,3,H,W]; reused (detached) by D, then by G
            adv_real, cls_real = D(real)
            adv_fake, _ = D(fake.detach())
            pick = torch.arange(local_batch, device=device)
            d_adv = L.adversarial_d(adv_real[pick, target].float(), adv_fake[pick, target].float(), cfg.adv_loss)
            d_cls = L.style_classification(cls_real, target)
        r1 = L.r1_penalty(lambda x: D(x)[0][pick, target], real) if cfg.w_r1 > 0 else torch.zeros((), device=device)
        loss_d = d_adv + cfg.w_cls * d_cls + 0.5 * cfg.w_r1 * r1
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        average_gradients(D)
        opt_d.step()

        # G step: fool the updated D, be classified as the target, match Gram statistics, keep content.
        D.requires_grad_(False)
        with amp:
            adv_g, cls_g = D(fake)
            g_adv = L.adversarial_g(adv_g[pick, target].float(), cfg.adv_loss)
            g_cls = L.style_classification(cls_g, target)
            g_style, g_style_hp = L.style_loss(f, fake, target, targets)
            g_content = L.content_loss(f, fake, content)
        loss_g = (cfg.w_adv * g_adv + cfg.w_cls * g_cls + cfg.w_style * g_style
                  + cfg.w_style_hp * g_style_hp + cfg.w_content * g_content)
        # A non-finite loss stops the run before anything is saved: the last checkpoint stays finite.
        finite = torch.isfinite(torch.stack([loss_d.detach().float(), loss_g.detach().float()])).all().float()
        if float(mean_across_ranks(finite.reshape(1))) < 1:     # collective: every rank stops together
            _stop_non_finite(step + 1, loss_d, loss_g, out_dir, saved_step)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        average_gradients(G)
        opt_g.step()
        D.requires_grad_(True)

        # EMA of G, warmed up so early samples are not dominated by the random init.
        beta = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - beta)
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)
        step += 1
        train_time += time.perf_counter() - t0
        bar.update(1)

        # --- logging, eval, samples, checkpoints (none of these touch the training RNG) --------
        # Rank 0 alone evaluates and writes; the others go on to the next collective and wait there.
        logs = None
        if step % cfg.log_every == 0 or step == cfg.steps:   # collective: the means over the ranks
            values = torch.stack([v.detach().float() for v in (loss_d, d_adv, d_cls, r1, loss_g, g_adv, g_cls,
                                                                g_style, g_style_hp, g_content)])
            logs = {"step": step} | dict(zip(_LOSSES, mean_across_ranks(values).tolist()))
            bar.set_postfix(d=f"{logs['loss_d']:.2f}", g=f"{logs['loss_g']:.2f}", refresh=False)
        if is_main() and (step % cfg.eval_every == 0 or step == cfg.steps):
            last_eval = run_eval(step)
            logs = (logs or {"step": step}) | {"eval": last_eval}
        if is_main() and logs is not None:
            _append_jsonl(metrics_path, logs)
            for cb in callbacks:
                cb(step, logs)
        if is_main() and (step % cfg.sample_every == 0 or step == cfg.steps):
            save_sample_grid(G_ema, data, out_dir / "samples" / f"step_{step:06d}.png", size=size, seed=cfg.seed)
        # the snapshot before the checkpoint: a run killed between the two replays this step on resume
        if cfg.keep_every and (step % cfg.keep_every == 0 or step == cfg.steps):
            keep(step, last_eval)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            ckpt = save(step, last_eval)
            saved_step = step
    bar.close()
    if ckpt is None:   # resumed at (or past) the final step: nothing to train, still hand back a checkpoint
        ckpt = save(step, last_eval)
    barrier()          # every rank returns once rank 0's final checkpoint is on disk
    if not is_main():
        return ckpt

    ev = last_eval or {}
    wall = time.perf_counter() - t_start
    rate = (step - start_step) / max(train_time, 1e-9)
    summary = (f"{recipe.name}: {step} steps, {rate:.2f} steps/s of training, {wall:.0f} s in all; "
               + ", ".join(f"{k} {ev[k]:.3f}" for k in ("acc_rgb", "acc_texture", "lum_corr", "ssim") if k in ev)
               + f" -> {ckpt}")
    print(summary)
    return ckpt


def drop_snapshots_after(out_dir: str | Path, step: int) -> list[Path]:
    """Remove the snapshots of steps after ``step`` (a resume replays those steps and keeps them again,
    with the resumed recipe's ``keep_every``), so a run never holds one from a killed tail."""
    remove_stale_tmp(Path(out_dir) / SNAPSHOT_DIR)      # a snapshot write that was killed
    gone = [p for s, p in list_snapshots(out_dir) if s > step]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def _finished(recipe: Recipe, out_dir: Path) -> tuple[Path, int] | None:
    """(checkpoint, step) when ``out_dir`` holds a run that already reached ``train.steps``."""
    from interp_gan.checkpoint import read_metadata

    ckpt = out_dir / "checkpoint.safetensors"
    if not (ckpt.is_file() and (out_dir / "trainer_state.pt").is_file() and (out_dir / "config.json").is_file()):
        return None
    _check_out_dir(recipe, out_dir, resume=True)        # the same recipe (up to resumable keys)
    step = int(read_metadata(ckpt).get("step", -1))
    return (ckpt, step) if step >= recipe.train.steps else None


def _skipped_images(data) -> dict | None:
    """Unreadable images the data loader skipped: printed once and logged to metrics.jsonl (the
    loader's other notes, files left out and images upscaled, are printed once too)."""
    if is_main():
        for line in getattr(data, "notes", []) or []:
            print(f"[interp-gan] data: {line}", flush=True)
    skipped = dict(getattr(data, "skipped", {}) or {})
    if not skipped:
        return None
    files = list(getattr(data, "skipped_files", []) or [])
    n = sum(skipped.values())
    if is_main():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items()))
        print(f"[interp-gan] skipped {n} unreadable image(s) ({counts})"
              + (f": {', '.join(files[:5])}{' ...' if n > 5 else ''}" if files else ""), flush=True)
    return {"skipped_images": skipped, "skipped_images_total": n, "skipped_files": files[:10]}


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN / Inf loss; the run stopped without saving."""


def _stop_non_finite(step: int, loss_d: torch.Tensor, loss_g: torch.Tensor, out_dir: Path,
                     saved_step: int | None) -> None:
    values = {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach())}
    if is_main():
        _append_jsonl(out_dir / "metrics.jsonl", {"step": step, "stopped": "non-finite loss", **values})
    kept = (f"the last finite checkpoint, {out_dir / 'checkpoint.safetensors'} (step {saved_step}), is kept"
            if saved_step else "no checkpoint was saved before it")
    raise NonFiniteLoss(f"training stopped at step {step}: non-finite loss (loss_d {values['loss_d']}, "
                        f"loss_g {values['loss_g']}); {kept}. Lower the learning rates or the loss weights")


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, ValueError):
        return 1 << 62  # a line cut by a kill: drop it
