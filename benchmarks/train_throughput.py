"""Images/s of one full G+D training step of the demo model, as a ratio to a plain G forward+backward.

    python benchmarks/train_throughput.py                 # CPU (and CUDA fp32 + bf16 when present)
    python benchmarks/train_throughput.py --sizes 64 128 --batch 8 --threads 2
    python benchmarks/train_throughput.py --recipe training/gpu256.toml --sizes   # a recipe's model and batch

With ``--recipe`` the generator, discriminator, image size and batch are the recipe's (e.g. the
256 px GPU recipe: ch 48, 3 downsamplings, 6 blocks, D 64 x 5 layers, batch 16); on CUDA
the bf16 / fp32 images/s ratio is printed too (goal >= 1.8 on a card with bf16 tensor cores).

One "train step" is what ``interp_gan.training.loop.train`` does per step: G forward, D step
(adversarial + style class + R1 on real), G step (adversarial + style class + full and
high-passed Gram losses + content loss) and the EMA update. The baseline is a G forward plus
a backward of its mean output, measured in the same process, so the ratio is meaningful on a
busy machine even when the absolute numbers are not. Not a test.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _result import emit  # noqa: E402

from interp_gan.models import RandomFeatureNet, StyleDiscriminator, StyleNet  # noqa: E402
from interp_gan.training import losses as L  # noqa: E402


def _time(fn, warmup: int, iters: int, cuda: bool) -> float:
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / iters


def bench(size: int, batch: int, device: str, bf16: bool, iters: int, num_styles: int = 4,
          ch: int = 32, n_blocks: int = 4, n_down: int = 2, d_ch: int = 32, d_layers: int = 4) -> tuple[float, float]:
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    fmt = torch.channels_last if cuda else torch.contiguous_format
    torch.manual_seed(0)
    G = StyleNet(num_styles, ch=ch, n_down=n_down, n_blocks=n_blocks).to(dev, memory_format=fmt)
    D = StyleDiscriminator(num_styles, ch=d_ch, n_layers=d_layers).to(dev, memory_format=fmt)
    G_ema = copy.deepcopy(G).requires_grad_(False)
    f = RandomFeatureNet().to(dev, memory_format=fmt)
    real = (torch.rand(4 * batch, 3, size, size, device=dev) * 2 - 1).contiguous(memory_format=fmt)
    labels = torch.arange(4 * batch, device=dev) % num_styles
    T = L.style_targets(f, real, labels, num_styles)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 2e-4), torch.optim.Adam(D.parameters(), 2e-4)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and bf16)
    content = (torch.rand(batch, 3, size, size, device=dev) * 2 - 1).contiguous(memory_format=fmt)
    ids = torch.arange(batch, device=dev) % num_styles
    z = torch.randn(batch, G.latent_dim, device=dev)
    pick = torch.arange(batch, device=dev)
    r = real[:batch]

    def g_only():
        with amp:
            out = G.generate(content, ids, z)
        opt_g.zero_grad(set_to_none=True)
        out.float().mean().backward()

    def step():
        with amp:
            fake = G.generate(content, ids, z)
            ar, cr = D(r)
            af, _ = D(fake.detach())
            d = L.adversarial_d(ar[pick, ids].float(), af[pick, ids].float()) + L.style_classification(cr, ids)
        d = d + 0.5 * L.r1_penalty(lambda x: D(x)[0][pick, ids], r)
        opt_d.zero_grad(set_to_none=True); d.backward(); opt_d.step()
        D.requires_grad_(False)
        with amp:
            ag, cg = D(fake)
            s, hp = L.style_loss(f, fake, ids, T)
            g = (L.adversarial_g(ag[pick, ids].float()) + L.style_classification(cg, ids) + s + hp
                 + L.content_loss(f, fake, content))
        opt_g.zero_grad(set_to_none=True); g.backward(); opt_g.step()
        D.requires_grad_(True)
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 0.001)

    warm = 3 if not cuda else 10
    t_g = _time(g_only, warm, iters, cuda)
    t_s = _time(step, warm, iters, cuda)
    return batch / t_s, t_s / t_g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 128], help="CPU sizes (none: skip the CPU)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    ap.add_argument("--cuda-batch", type=int, default=32)
    ap.add_argument("--cuda-sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--recipe", default="", help="a training recipe (.toml): its model, image size and batch")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    arch: dict = {}
    name = "default model (ch 32, 4 blocks)"
    if args.recipe:
        from interp_gan.config import load_recipe
        r = load_recipe(args.recipe)
        m = r.model
        arch = {"num_styles": len(r.data.styles), "ch": m.ch, "n_blocks": m.n_blocks, "n_down": m.n_down,
                "d_ch": m.d_ch, "d_layers": m.d_layers}
        args.cuda_sizes, args.cuda_batch = [r.data.image_size], r.train.batch_size
        args.sizes = [r.data.image_size] if args.sizes else []
        args.batch = r.train.batch_size
        name = f"recipe {Path(args.recipe).name}"
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, {name}")
    print(f"{'device':<6} {'dtype':<5} {'size':>4} {'batch':>5} {'img/s':>9} {'step / (G fwd+bwd)':>19}")
    for size in args.sizes:
        ips, ratio = bench(size, args.batch, "cpu", False, args.iters, **arch)
        print(f"{'cpu':<6} {'fp32':<5} {size:>4} {args.batch:>5} {ips:>9.1f} {ratio:>19.2f}")
        emit("train_throughput", f"training images/s, fp32, {size} px, {name}", ips, None, device="cpu",
             size=size, batch=args.batch, step_over_g_fwd_bwd=round(ratio, 3))
    if torch.cuda.is_available():
        print(f"cuda: {torch.cuda.get_device_name()}")
        for size in args.cuda_sizes:
            ips = {}
            for bf16 in (False, True):
                ips[bf16], ratio = bench(size, args.cuda_batch, "cuda", bf16, max(args.iters, 20), **arch)
                print(f"{'cuda':<6} {'bf16' if bf16 else 'fp32':<5} {size:>4} {args.cuda_batch:>5} "
                      f"{ips[bf16]:>9.1f} {ratio:>19.2f}", flush=True)
            emit("train_throughput", f"training images/s bf16 / fp32, {size} px, {name}", ips[True] / ips[False],
                 ">= 1.8", device="cuda", size=size, batch=args.cuda_batch, fp32_img_s=round(ips[False], 1),
                 bf16_img_s=round(ips[True], 1))


if __name__ == "__main__":
    main()
