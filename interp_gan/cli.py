"""``interp-gan``: train | analyze | report | demo | inspect | convert | edit | repair.

    interp-gan train training/demo.toml --set train.steps=200 --out runs/mine [--dry-run]
    interp-gan analyze runs/mine/checkpoint.safetensors --pipeline analyses/dissection.toml
    interp-gan analyze --model my_models.py:make_generator --pipeline analyses/dissection.toml
    interp-gan analyze runs/mine --over-steps   # every step kept by train.keep_every (docs/dynamics.md)
    interp-gan report reports/mine            # re-render index.html from saved findings
    interp-gan report --compare reports/a reports/b   # the two runs' claims side by side
    interp-gan inspect runs/mine/checkpoint.safetensors
    interp-gan inspect arbitrary_transform.onnx --onnx style_predictor=arbitrary_predict.onnx --onnx styles=lite01
    interp-gan convert latest_net_G_A.pth cyclegan_horse2zebra.safetensors
    interp-gan convert 200000-G.ckpt stargan.safetensors --style-names black_hair,blond_hair,brown_hair,male,young
    interp-gan convert 100000_nets_ema.ckpt stargan_v2_afhq.safetensors --style-names cat,dog,wild
    interp-gan convert network-snapshot.pkl stylegan.safetensors     # NVlabs StyleGAN2 / 3 pickle, read code-free
    interp-gan analyze "network-snapshot.pkl#space=s" --pipeline analyses/full.toml   # StyleSpace S
    interp-gan edit runs/mine/checkpoint.safetensors --ablate "blocks.3.conv2:12,40" --out edited.safetensors
    interp-gan edit runs/mine/checkpoint.safetensors --remove-style impressionist --k 16 --out no_impressionist.safetensors
    interp-gan inspect runs/mine/samples/step_000500.png   # an image's provenance mark (or: none)
    interp-gan repair runs/mine/checkpoint.safetensors --layer blocks.3.conv2 --k 4 --out repaired.safetensors
    interp-gan demo                           # train training/demo.toml, then write reports/demo/

User errors print one line ("error: ...") and exit 2; any other error one line and exit 1; a
failed analysis one line each (exit 1, the report is still written). None ends in a traceback
unless INTERP_GAN_DEBUG=1. SIGTERM is handled like Ctrl-C (exit 130).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

__all__ = ["main"]

_ROOT = Path(__file__).resolve().parents[1]


def _find(path: str) -> Path:
    """A recipe path as given, else relative to the source checkout (for ``training/demo.toml``)."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    q = _ROOT / p
    return q if q.exists() else p


def _cmd_train(a: argparse.Namespace) -> int:
    from interp_gan.config import load_recipe

    recipe = load_recipe(_find(a.recipe), a.set)
    if a.device:
        from dataclasses import replace
        recipe = replace(recipe, train=replace(recipe.train, device=a.device))
    out = Path(a.out or f"runs/{recipe.name}")
    if a.dry_run:
        print(json.dumps({"out": str(out), "recipe": recipe.to_dict()}, indent=2))
        return 0
    from interp_gan.training import train
    from interp_gan.distributed import init_from_env, shutdown

    # Under torchrun (WORLD_SIZE > 1) this joins the process group; one process: a no-op.
    init_from_env(recipe.train.device)
    try:
        train(recipe, out, resume=a.resume)
    finally:
        shutdown()
    return 0


def _cmd_analyze(a: argparse.Namespace) -> int:
    from interp_gan.config import load_pipeline
    from interp_gan.pipeline import analyze
    from interp_gan.distributed import init_from_env, is_main, shutdown

    if bool(a.checkpoint) == bool(a.model):
        raise ValueError("give a CHECKPOINT or --model file.py:factory (exactly one)")
    if a.over_steps:
        return _analyze_over_steps(a)
    cfg = load_pipeline(_find(a.pipeline or "analyses/dissection.toml"), a.set)
    init_from_env(a.device or cfg.device)   # under torchrun: a process group (one process: nothing)
    try:
        main_rank = is_main()
        _, failed = analyze(a.checkpoint or a.model, cfg, out_dir=a.out, data=a.data, device=a.device,
                            onnx_options=_onnx_options(a.onnx))
    finally:
        shutdown()
    # Rank 0 writes the report and owns the exit status. Another rank exits 0 even when an
    # analysis failed (rank 0 knows: a sharded failure fails on every rank): torchrun stops every
    # worker as soon as one exits non-zero, which would kill rank 0 before it writes the report.
    if failed and main_rank:
        _say_failures(failed, Path(a.out or f"reports/{cfg.name}"))
        return 1
    return 0


def _analyze_over_steps(a: argparse.Namespace) -> int:
    """``analyze runs/NAME --over-steps``: the pipeline on every kept step, plus the dynamics (docs/dynamics.md)."""
    from interp_gan.config import load_pipeline
    from interp_gan.over_steps import analyze_over_steps

    if a.model:
        raise ValueError("--over-steps follows a training run: give its run directory (runs/NAME), not --model")
    cfg = load_pipeline(_find(a.pipeline or "analyses/dynamics.toml"), a.set)
    report, failed = analyze_over_steps(a.checkpoint, cfg, out_dir=a.out, data=a.data, device=a.device)
    for f in failed:
        print(f"error: analysis {f} failed (see {report / 'index.html'})", file=sys.stderr)
    return 1 if failed else 0


def _say_failures(failed: list[str], report: Path) -> None:
    """One line per failed analysis, with its error as the report records it."""
    for name in failed:
        why = ""
        try:
            why = json.loads((report / "findings" / name / "finding.json").read_text()).get("skipped") or ""
        except (OSError, ValueError):
            pass
        print(f"error: analysis {name} {why or 'failed'}", file=sys.stderr)
    print(f"error: {len(failed)} analysis(es) failed: {', '.join(failed)} (see {report / 'index.html'})",
          file=sys.stderr)


def _cmd_report(a: argparse.Namespace) -> int:
    from interp_gan.findings import Finding
    from interp_gan.reporting import ReportContext, write_report

    if a.compare:
        from interp_gan.reporting.compare import compare_reports
        ra, rb = (Path(x) for x in a.compare)
        out = compare_reports(ra, rb, Path(a.out or f"reports/compare_{ra.name}_{rb.name}"))
        print(out / "index.html")
        return 0
    if not a.report_dir:
        raise ValueError("interp-gan report: give a report directory, or --compare A B")
    if a.out:      # it was ignored: the report was re-rendered in place, not where --out said
        raise ValueError(f"--out is for --compare only; `interp-gan report {a.report_dir}` re-renders that folder in "
                         "place (copy the folder first to keep the old index.html)")
    d = Path(a.report_dir)
    manifest = d / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{d} is not a report directory (no manifest.json); run `interp-gan analyze` first")
    from interp_gan.guards import check_report_provenance, read_json

    meta = read_json(manifest, "report manifest")
    fdir = d / "findings"
    findings = {p.name: Finding.load(p) for p in sorted(fdir.iterdir()) if (p / "finding.json").is_file()} \
        if fdir.is_dir() else {}
    check_report_provenance(d, meta, findings)
    ctx = ReportContext(name=d.name, meta=meta.get("meta", meta), findings=findings,
                        style_names=meta.get("style_names", []))
    out = write_report(d, findings, ctx)
    print(out / "index.html")
    return 0


def _onnx_options(items: list[str] | None) -> dict | None:
    """``--onnx key=value`` strings -> the ONNX loader's options (lists: a,b,c or a TOML array)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--onnx expects key=value (e.g. style_predictor=arbitrary_predict.onnx), got {item!r}")
        key, text = (t.strip() for t in item.split("=", 1))
        if text.startswith("["):
            import tomllib
            try:
                text = tomllib.loads(f"v = {text}")["v"] if key in ("style_names", "styles") else text
            except tomllib.TOMLDecodeError:
                pass
        out[key] = text
    return out or None


def compact_json(obj, width: int = 110, indent: int = 2, _at: int = 0, _prefix: str = "") -> str:
    """JSON as ``json.dumps(indent=2)`` writes it, but a list or dict that fits on its line stays on it:
    a layer list of 15 small dicts is 15 lines, not 130, and the notes below it stay in view."""
    one = json.dumps(obj, default=str)
    if not isinstance(obj, (dict, list)) or not obj or _at + len(_prefix) + len(one) <= width:
        return one
    pad, end = " " * (_at + indent), " " * _at
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(str(k))}: " for k in obj]
        items = [p + compact_json(v, width, indent, _at + indent, p.strip()) for p, v in zip(items, obj.values())]
        return "{\n" + ",\n".join(items) + f"\n{end}}}"
    items = [pad + compact_json(v, width, indent, _at + indent) for v in obj]
    return "[\n" + ",\n".join(items) + f"\n{end}]"


def _cmd_inspect(a: argparse.Namespace) -> int:
    from interp_gan.data.images import IMAGE_EXTENSIONS
    from interp_gan.provenance_mark import describe_mark
    if Path(a.checkpoint).suffix.lower() in IMAGE_EXTENSIONS:   # an image (.gif, .tif too): its provenance mark
        print(describe_mark(a.checkpoint))
        return 0
    import torch

    from interp_gan.edits import describe_edits
    from interp_gan.subject.loading import load_subject

    subject = load_subject(a.checkpoint, device="cpu", onnx_options=_onnx_options(a.onnx))
    meta = {k: v for k, v in subject.meta.items() if k != "metrics"}
    print(compact_json({"style_names": subject.style_names, "has_latent": subject.has_latent, "metadata": meta}))
    if describe_edits(meta):
        print(f"\n{describe_edits(meta)}")
    size = a.size
    fixed = subject.meta.get("input_contract", {}).get("size") == "fixed"
    if fixed:   # a network of one size runs at that size only (a non-square one: square images resized to it)
        size = max(subject.meta["input_contract"]["declared_size"])
    own = getattr(subject.generator, "fixed_size", None)     # a module of one square size (a full U-GAT-IT)
    own = int(own[0]) if not fixed and own and own[0] == own[1] and size != own[0] else None
    size = own or size
    mult = int(getattr(subject.generator, "size_multiple", 1) or 1)   # a U-Net of 8 levels: multiples of 256
    rounded = not fixed and not own and mult > 1 and size % mult != 0
    size = -(-size // mult) * mult if rounded else size
    shapes: dict[str, tuple] = {}
    hooks = []
    for name, m in subject.generator.named_modules():
        if name:
            hooks.append(m.register_forward_hook(
                lambda mod, i, o, name=name: shapes.__setitem__(name, tuple(o.shape) if torch.is_tensor(o) else None)))
    try:
        with torch.no_grad():
            x = torch.zeros(1, 3, size, size)
            subject.generate(x, torch.zeros(1, dtype=torch.long),
                             subject.sample_z(1) if subject.latent_dim else None)
    finally:
        for h in hooks:
            h.remove()
    hw = subject.meta.get("input_contract", {}).get("declared_size") or [size, size]
    what = (f", the size the graph declares" if hw[0] == hw[1] else
            f", resized to the {hw[0]}x{hw[1]} the graph declares") if fixed else (
                ", the one size the model takes" if own else
                f", --size {a.size} rounded up to a multiple of {mult}, which the model takes" if rounded else "")
    if not subject.uses_content:     # a GAN sampling from z: the image size is its own, not --size
        res = subject.meta.get("resolution")
        print(f"\nlayers (output shape for one {f'{res}x{res} ' if res else ''}image synthesised from a seeded z; "
              "no content input):")
    else:
        print(f"\nlayers (output shape for one {size}x{size} image{what}):")
    for name, m in subject.generator.named_modules():
        if name:
            n_params = sum(p.numel() for p in m.parameters(recurse=False))
            print(f"  {name:<40} {type(m).__name__:<20} {str(shapes.get(name, 'not run')):<22} {n_params} params")
    kind = subject.meta.get("model", {}).get("name")
    if kind in ("onnx", "torchscript"):
        from interp_gan.subject.onnx_check import onnx_report
        from interp_gan.subject.torchscript import torchscript_report

        sample = Path(a.sample or f"{Path(a.checkpoint).stem}.inspect.png")
        print()
        for line in (onnx_report if kind == "onnx" else torchscript_report)(a.checkpoint, subject, size, sample):
            print(line)
    return 0


def _cmd_convert(a: argparse.Namespace) -> int:
    from interp_gan.subject.loading import convert_checkpoint

    names = None if a.style_names is None else [n.strip() for n in a.style_names.split(",")]
    print(convert_checkpoint(a.src, a.out, style_names=names))
    return 0


def _cmd_edit(a: argparse.Namespace) -> int:
    from interp_gan.edits import ModelEdit, describe_edits, parse_edit_arg
    from interp_gan.checkpoint import read_metadata

    edits = [parse_edit_arg(kind, t) for kind, items in (("ablate", a.ablate), ("insert", a.insert),
                                                         ("scale", a.scale)) for t in items]
    edits += _style_edits(a)
    out = ModelEdit(edits).save(a.out, source=a.checkpoint)
    print(out)
    print(describe_edits(read_metadata(out)))
    return 0


# --- edit --remove-style / --insert-style (analyses/units/style_edits.py, docs/edits.md) ---------
def _add_style_edit_args(e: argparse.ArgumentParser) -> None:
    g = e.add_argument_group("style edits (units ranked on --data; docs/edits.md)")
    g.add_argument("--remove-style", metavar="NAME", help="zero-ablate the --k units of --layer most selective "
                                                          "for style NAME")
    g.add_argument("--insert-style", metavar="NAME", help="force the --k units most selective for NAME to NAME's "
                                                          "mean activation (a style transfer into every image)")
    g.add_argument("--k", type=int, default=16, help="units per style edit (default 16)")
    g.add_argument("--layer", help="the layer (default: the last style block / the middle conv)")
    _add_data_args(g)


def _style_edits(a: argparse.Namespace) -> list:
    """The UnitEdits of --remove-style / --insert-style (none without them)."""
    if not (a.remove_style or a.insert_style):
        return []
    from dataclasses import replace

    from interp_gan.analyses.units.style_edits import style_removal_edit, style_transfer_edit
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import analysis_data
    from interp_gan.subject.loading import load_subject

    subject = load_subject(a.checkpoint, device=a.device or "auto")
    data = analysis_data(subject, PipelineConfig(n_images=a.n_images, image_size=a.image_size, seed=a.seed),
                         source=a.data or "embedded")
    dev = subject.device
    data = replace(data, content=data.content.to(dev), style_ids=data.style_ids.to(dev),
                   z=None if data.z is None else data.z.to(dev))
    out = []
    for name, build in ((a.remove_style, style_removal_edit), (a.insert_style, style_transfer_edit)):
        if name:
            out += build(subject, data, name, a.k, layer=a.layer, seed=a.seed).edits
    return out


def _add_data_args(p) -> None:
    """The images an edit is ranked on (``edit --remove-style / --insert-style`` and ``repair``)."""
    p.add_argument("--data", help="'embedded' (default) or a folder of content images (or with content/ and style/)")
    p.add_argument("--n-images", type=int, default=64, help="content images to rank units on (default 64)")
    p.add_argument("--image-size", type=int, default=64, help="their size in px (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the image sample (default 0)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help=_DEVICE_HELP)


def _cmd_repair(a: argparse.Namespace) -> int:
    from interp_gan.analyses.units.artifacts import before_after, grid_image, plan_repair
    from interp_gan.config import PipelineConfig
    from interp_gan.pipeline import analysis_data
    from interp_gan.provenance_mark import save_marked_image
    from interp_gan.subject.loading import load_subject
    from interp_gan.util import sha256_file, to_uint8

    out = Path(a.out)
    grid_path = out.with_name(out.stem + ".before_after.png")
    for p in (out, grid_path):
        if p.exists():
            raise FileExistsError(f"{p} exists; choose another --out (files are never overwritten)")
    k = str(a.k).strip().lower()
    if k != "auto" and not k.lstrip("-").isdigit():
        raise ValueError(f"--k expects a whole number (the largest k to try) or 'auto'; got {a.k!r}")
    if a.n_boot < 1 or a.n_show < 1:
        raise ValueError(f"--n-boot and --n-show must be >= 1; got {a.n_boot} and {a.n_show}")
    subject = load_subject(a.checkpoint, device=a.device or "auto")
    cfg = PipelineConfig(n_images=a.n_images, image_size=a.image_size, seed=a.seed)
    data = analysis_data(subject, cfg, source=a.data or "embedded")
    dev = subject.device
    from dataclasses import replace
    data = replace(data, content=data.content.to(dev), style_ids=data.style_ids.to(dev),
                   z=None if data.z is None else data.z.to(dev))
    k_max = None if k == "auto" else int(k)
    plan = plan_repair(subject, data, layer=a.layer, k_max=k_max, n_boot=a.n_boot, seed=a.seed)
    if not plan.k:
        print(plan.summary())
        return 1
    plan.edit().save(out, source=a.checkpoint)
    before, after = before_after(subject, data, plan.layer, plan.units, n_show=a.n_show, seed=a.seed)
    S, n = before.shape[:2]
    grid = grid_image(to_uint8(before.flatten(0, 1)).reshape(S, n, *before.shape[-2:], 3),
                      to_uint8(after.flatten(0, 1)).reshape(S, n, *after.shape[-2:], 3))
    save_marked_image(grid, grid_path, sha256_file(out), format="PNG", sha256_of="checkpoint file (the repaired one)")
    print(out)
    print(f"{grid_path}  (rows: {', '.join(subject.style_names)}; left: before, right: after)")
    print(plan.summary())
    return 0


def _cmd_demo(a: argparse.Namespace) -> int:
    from interp_gan.config import load_pipeline, load_recipe
    from interp_gan.pipeline import analyze

    t0 = time.perf_counter()
    recipe = load_recipe(_find("training/demo.toml"), a.set)
    run = Path(a.run)
    ckpt = run / "checkpoint.safetensors"
    if ckpt.is_file():
        print(f"[interp-gan] {ckpt} exists: reusing it (delete {run} to train again)")
    else:
        from interp_gan.training import train
        train(recipe, run, resume=(run / "trainer_state.pt").is_file())
    cfg = load_pipeline(_find("analyses/demo.toml"))
    report, failed = analyze(ckpt, cfg, out_dir=a.out)
    print(f"[interp-gan] demo done in {time.perf_counter() - t0:.0f}s: open {report / 'index.html'}")
    if failed:
        _say_failures(failed, report)
    return 1 if failed else 0


_DEVICE_HELP = "where to compute (auto: CUDA when there is one, else CPU)"


def build_parser() -> argparse.ArgumentParser:
    intro, examples = __doc__.split("\n\n")[:2]
    p = argparse.ArgumentParser(prog="interp-gan", description=intro.replace("``", ""),
                                epilog="examples:\n" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a style-transfer GAN from a TOML recipe")
    t.add_argument("recipe", help="training recipe TOML, e.g. training/demo.toml")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.steps=100")
    t.add_argument("--out", help="run directory (default runs/<recipe name>); never overwritten")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], help=_DEVICE_HELP)
    t.add_argument("--resume", action="store_true", help="continue the run in --out from trainer_state.pt")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.set_defaults(fn=_cmd_train)

    an = sub.add_parser("analyze", help="run an analysis pipeline on a checkpoint or model and write a report")
    an.add_argument("checkpoint", nargs="?",
                    help="a model file: an interp_gan .safetensors checkpoint; a third-party state dict (.pth / .pt / "
                         ".ckpt / plain .safetensors: CycleGAN / pix2pix / CUT, StarGAN v1 / v2, U-GAT-IT, MUNIT, "
                         "AnimeGANv2, fast neural style, rosinality StyleGAN2; pytorch-AdaIN's "
                         "'decoder.pth#vgg=vgg_normalised.pth'); an NVlabs StyleGAN2 / StyleGAN3 .pkl; "
                         "ONNX; TorchScript; options after '#', e.g. 'G.pth#net=netG_B' (docs/models.md). Or a run "
                         "directory with --over-steps; or leave it out and give --model")
    an.add_argument("--model", help="path/to/file.py:factory or package.module:factory returning an nn.Module")
    an.add_argument("--pipeline", help="pipeline TOML (default analyses/dissection.toml; with --over-steps "
                                       "analyses/dynamics.toml)")
    an.add_argument("--over-steps", action="store_true",
                    help="CHECKPOINT is a run directory trained with train.keep_every: run the pipeline on every "
                         "kept step and add the 'Training dynamics' section and dynamics.csv (docs/dynamics.md)")
    an.add_argument("--data", help="'embedded' (default) or a folder of content images (or with content/ and style/)")
    an.add_argument("--out", help="report directory (default reports/<pipeline name>)")
    an.add_argument("--device", choices=["auto", "cpu", "cuda"], help=_DEVICE_HELP + "; default: the pipeline's device")
    an.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. n_images=32")
    an.add_argument("--onnx", action="append", default=[], metavar="KEY=VALUE",
                    help="ONNX (and TorchScript) loader option, as in the sidecar net.onnx.toml (docs/models.md), "
                         "e.g. style_predictor=arbitrary_predict.onnx")
    an.set_defaults(fn=_cmd_analyze)

    r = sub.add_parser("report", help="re-render a report directory from its saved findings, or compare two")
    r.add_argument("report_dir", nargs="?", help="a report directory written by analyze (holding manifest.json)")
    r.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two report directories claim by claim")
    r.add_argument("--out", help="with --compare: where to write (default reports/compare_<A>_<B>)")
    r.set_defaults(fn=_cmd_report)

    i = sub.add_parser("inspect", help="print a checkpoint's metadata, style names and every layer's output shape; "
                                       "for an image (.png / .jpg / .webp / ...): its provenance mark")
    i.add_argument("checkpoint", help="any model file analyze takes (options after '#' too), or a .png / .jpg")
    i.add_argument("--size", type=int, default=64, help="image size (a graph of one fixed size uses its own)")
    i.add_argument("--onnx", action="append", default=[], metavar="KEY=VALUE",
                   help="ONNX (and TorchScript) loader option, as in the sidecar net.onnx.toml (docs/models.md), "
                        "e.g. style_predictor=arbitrary_predict.onnx, range=[0,255], layout=NHWC, size=free")
    i.add_argument("--sample", metavar="PNG", help="ONNX / TorchScript: where to write the sample image "
                                                   "(default ./<model stem>.inspect.png)")
    i.set_defaults(fn=_cmd_inspect)

    c = sub.add_parser("convert", help="a third-party checkpoint interp_gan reads (CycleGAN / pix2pix / CUT, "
                                       "StarGAN v1 / v2, AnimeGANv2, fast neural style, U-GAT-IT, MUNIT state "
                                       "dicts; rosinality StyleGAN2 .pt; an NVlabs StyleGAN2 / StyleGAN3 .pkl, "
                                       "read without running its code; docs/models.md) -> a self-describing "
                                       ".safetensors")
    c.add_argument("src", help="the third-party file (options after '#', e.g. 'G.pth#net=netG_B')")
    c.add_argument("out", help="the .safetensors to write (never overwritten)")
    c.add_argument("--style-names", metavar="A,B,...",
                   help="one name per style in label order (StarGAN: c_dim domains, e.g. "
                        "black_hair,blond_hair,brown_hair,male,young; StarGAN v2 AFHQ: cat,dog,wild; a "
                        "conditional StyleGAN2: its classes); default domain0,... / class0,... / translated")
    c.set_defaults(fn=_cmd_convert)

    e = sub.add_parser("edit", help="write an edited checkpoint: ablate / insert / scale units of a layer "
                                    "(docs/edits.md); analyses of it see the edited model")
    e.add_argument("checkpoint", help="an interp_gan .safetensors checkpoint (trained or converted)")
    e.add_argument("--ablate", action="append", default=[], metavar="LAYER:UNITS[=VALUE]",
                   help="set units of the layer's output to VALUE (default 0), e.g. blocks.3.conv2:12,40")
    e.add_argument("--insert", action="append", default=[], metavar="LAYER:UNITS=VALUE",
                   help="force units of the layer's output to VALUE")
    e.add_argument("--scale", action="append", default=[], metavar="LAYER:UNITS=FACTOR",
                   help="multiply units of the layer's output by FACTOR")
    e.add_argument("--out", required=True, help="the edited .safetensors (never overwritten)")
    _add_style_edit_args(e)
    e.set_defaults(fn=_cmd_edit)

    rp = sub.add_parser("repair", help="ablate the top k artifact units (those whose ablation most raises the "
                                       "discriminator's realism logit), k chosen on held-out images so style is not "
                                       "lost beyond its CI; writes the edited checkpoint and a before / after grid "
                                       "(docs/edits.md)")
    rp.add_argument("checkpoint", help="an interp_gan .safetensors checkpoint with a discriminator")
    rp.add_argument("--k", default="auto", metavar="N|auto",
                    help="the largest k to try (default auto: up to 8); the k chosen is the one with the largest "
                         "realism gain whose style cost stays within its CI (docs/edits.md)")
    rp.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for the CIs (default 200)")
    rp.add_argument("--n-show", type=int, default=4, help="content images per style in the before / after grid")
    rp.add_argument("--layer", help="the layer (default: the last style block / the middle conv)")
    _add_data_args(rp)
    rp.add_argument("--out", required=True, help="the edited .safetensors (never overwritten)")
    rp.set_defaults(fn=_cmd_repair)

    d = sub.add_parser("demo", help="train training/demo.toml on the embedded data, then write reports/demo/")
    d.add_argument("--run", default="runs/demo", help="run directory (default runs/demo); its "
                   "checkpoint.safetensors is reused when it exists")
    d.add_argument("--out", default="reports/demo", help="report directory (default reports/demo)")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the training recipe, e.g. train.steps=300 (not used when --run holds a checkpoint)")
    d.set_defaults(fn=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    # Sleep, don't spin, while OpenMP threads wait (read when torch loads, so before any import of
    # it): with another busy process on a 2-core machine, spinning threads made a 64 px training
    # step 4.1 s instead of 0.26 s (measured here). Set OMP_WAIT_POLICY yourself to override.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    previous = _terminate_as_interrupt()
    try:
        return args.fn(args)
    except (ValueError, LookupError, FileNotFoundError, FileExistsError, TypeError) as e:
        if os.environ.get("INTERP_GAN_DEBUG"):
            raise
        print(f"error: {e}  (INTERP_GAN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:   # OSError (disk full, permissions), RuntimeError, ...: one line too
        if os.environ.get("INTERP_GAN_DEBUG"):
            raise
        print(f"error: {type(e).__name__}: {e}  (INTERP_GAN_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _terminate_as_interrupt():
    """SIGTERM (a scheduler's stop, ``kill``) ends the command like Ctrl-C: ``finally`` blocks run,
    so temporary activation stores and atomic-write temp files are removed. Returns the old handler
    (None when not on the main thread, where signals cannot be set)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


if __name__ == "__main__":
    sys.exit(main())
