"""torchrun training (docs/scaling.md): 2 gloo CPU processes train the model 1 process trains.

The workers join through the environment variables torchrun sets (``init_from_env``), share one
run directory and one classifier cache, and each saves its own final G and D so the test can
compare the ranks with each other and with a single-process run of the same recipe.
"""
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from interp_gan.training import loop, train
from conftest import make_tiny_data, tiny_recipe

pytestmark = pytest.mark.slow   # fresh processes import torch: seconds each

STEPS, WORLD, NUM_STYLES = 3, 2, 4
# Max |2 processes - 1 process| after 3 steps, measured here: D weights 7e-9, G / G_ema weights
# 6e-7 and outputs 9.5e-7 (float rounding: half-batch means, the all_reduce). Without the
# gradient averaging, or with each rank drawing its own batch, they are >= 1.3e-3 (weights) and
# >= 2.6e-2 (outputs); without the averaging the in-loop check_in_sync also stops the run.
TOL = 5e-6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _capture_models(built: list) -> None:
    """Keep the G and D that ``train`` builds in this process (the workers' own replicas)."""
    make_g, make_d = loop.build_generator, loop.build_discriminator
    loop.build_generator = lambda *a: built.append(make_g(*a)) or built[-1]
    loop.build_discriminator = lambda *a: built.append(make_d(*a)) or built[-1]


def _expect(error: type, fn) -> str:
    try:
        fn()
    except error as e:
        return str(e)
    return "no error"


def _worker(rank: int, port: int, root: str) -> None:
    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), INTERP_GAN_CACHE=f"{root}/cache")
    torch.set_num_threads(1)
    from interp_gan.distributed import init_from_env, shutdown
    from interp_gan.training.distributed import check_in_sync
    assert init_from_env("cpu").world_size == WORLD
    root, data, out, built = Path(root), make_tiny_data(), {}, []
    try:
        out["odd"] = _expect(ValueError, lambda: train(tiny_recipe(1, batch_size=5), root / "odd", data=data,
                                                       progress=False))
        out["busy"] = _expect(FileExistsError, lambda: train(tiny_recipe(1), root / "busy", data=data,
                                                             progress=False))
        _capture_models(built)
        train(tiny_recipe(STEPS), root / "dist", data=data, progress=False)
        out["G"], out["D"] = (m.state_dict() for m in built[:2])
        train(tiny_recipe(STEPS - 1), root / "part", data=data, progress=False)
        train(tiny_recipe(STEPS), root / "part", resume=True, data=data, progress=False)
        G = built[-2]
        if rank == 1:                       # a replica that drifted is caught on every rank
            with torch.no_grad():
                next(G.parameters()).add_(1e-3)
        out["drift"] = _expect(RuntimeError, lambda: check_in_sync(G))
    finally:
        shutdown()
    torch.save(out, root / f"rank{rank}.pt")


def _spawn(root: Path, timeout: float = 180) -> None:
    """Run the workers; fail (instead of hanging the suite) if they do not finish in ``timeout`` s."""
    ctx = mp.spawn(_worker, args=(_free_port(), str(root)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the {WORLD} training processes did not finish in {timeout} s (a rank waits forever)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    (root / "busy").mkdir()
    (root / "busy" / "notes.txt").write_text("precious")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp_env:
            mp_env.setenv("INTERP_GAN_CACHE", str(root / "cache"))
            t0 = time.perf_counter()
            _spawn(root)
            print(f"2-process runs: {time.perf_counter() - t0:.1f} s")
            train(tiny_recipe(STEPS), root / "single", data=make_tiny_data(), progress=False)
    finally:
        torch.set_num_threads(threads)
    ranks = [torch.load(root / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    return root, ranks


def _state(run: Path) -> dict:
    return torch.load(run / "trainer_state.pt", weights_only=True)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _generator(state: dict) -> torch.nn.Module:
    G = loop.build_generator(tiny_recipe().model.to_dict(), NUM_STYLES)
    G.load_state_dict(state)
    return G.eval()


def _probe() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(5)
    return (torch.rand(8, 3, 16, 16, generator=g) * 2 - 1, torch.arange(8) % NUM_STYLES,
            torch.randn(8, tiny_recipe().model.latent_dim, generator=g))


@torch.no_grad()
def _dead_parameters(G: torch.nn.Module) -> set[str]:
    """Parameters G's output does not depend on: biases of convs whose output an InstanceNorm re-centres.

    Their exact gradient is 0; in float32 it is rounding noise (~1e-7, above Adam's eps 1e-8), so
    Adam (beta1=0) moves them by about +-lr in a direction the noise picks, in any run (one
    process or two). Found here by adding 1 to each parameter and watching the output.
    """
    probe = _probe()
    ref, dead = G.generate(*probe), set()
    for name, p in G.named_parameters():
        p.add_(1.0)
        if (G.generate(*probe) - ref).abs().max() < 1e-4:
            dead.add(name)
        p.sub_(1.0)
    return dead


def test_two_processes_train_the_single_process_model(runs):
    root, _ = runs
    dist, single = _state(root / "dist"), _state(root / "single")
    assert dist["step"] == single["step"] == STEPS
    dead = _dead_parameters(_generator(single["G"]))
    assert dead and all(n.endswith("bias") for n in dead) and len(dead) < len(single["G"]) / 4, dead
    diffs = {"D": _max_diff(dist["D"], single["D"])}
    for part in ("G", "G_ema"):
        diffs[part] = _max_diff(*({k: v for k, v in s[part].items() if k not in dead} for s in (dist, single)))
        with torch.no_grad():
            out = [_generator(s[part]).generate(*_probe()) for s in (dist, single)]
        diffs[f"{part} output"] = float((out[0] - out[1]).abs().max())
    print(f"max |2 processes - 1 process|: {diffs}")
    assert max(diffs.values()) < TOL, diffs
    # the tolerance is far below what training moved the weights (train() seeds, then builds G first)
    torch.manual_seed(tiny_recipe().train.seed)
    init = loop.build_generator(tiny_recipe().model.to_dict(), NUM_STYLES).state_dict()
    assert _max_diff(single["G"], init) > 50 * TOL


def test_both_ranks_hold_identical_weights(runs):
    _, (r0, r1) = runs
    for part in ("G", "D"):
        assert all(torch.equal(r0[part][k], r1[part][k]) for k in r0[part]), part
    assert _max_diff(r0["G"], _state(runs[0] / "dist")["G"]) == 0   # rank 0 saved what it trained


def test_logged_losses_are_the_single_process_losses(runs):
    import json
    root, _ = runs

    def rows(run):
        return [{k: v for k, v in json.loads(ln).items() if k != "eval"}
                for ln in (run / "metrics.jsonl").read_text().splitlines()]
    dist, single = rows(root / "dist"), rows(root / "single")
    assert [r["step"] for r in dist] == [r["step"] for r in single] == list(range(1, STEPS + 1))
    for a, b in zip(dist, single):
        assert a.keys() == b.keys()
        assert all(a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-6) for k in a), (a, b)


def test_only_rank_zero_writes_one_run_dir(runs):
    root, _ = runs
    names = sorted(p.relative_to(root / "dist").as_posix() for p in (root / "dist").rglob("*"))
    assert names == ["checkpoint.safetensors", "config.json", "metrics.jsonl", "samples",
                     f"samples/step_{STEPS:06d}.png", "trainer_state.pt"]
    assert len((root / "dist" / "metrics.jsonl").read_text().splitlines()) == STEPS   # not one per rank


def test_resume_under_two_processes_equals_an_uninterrupted_run(runs):
    root, _ = runs
    part, full = _state(root / "part"), _state(root / "dist")
    assert part["step"] == STEPS
    assert all(torch.equal(part[m][k], full[m][k]) for m in ("G", "G_ema", "D") for k in full[m])


def test_errors_reach_every_rank_instead_of_hanging(runs):
    root, ranks = runs
    for r in ranks:
        assert r["odd"].startswith("train.batch_size 5 is not divisible by the 2 processes")
        assert "never overwritten" in r["busy"]
        assert "differ from rank 0's" in r["drift"]
    assert sorted(p.name for p in (root / "busy").iterdir()) == ["notes.txt"]
    assert not (root / "odd").exists()
