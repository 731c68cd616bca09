"""Dissection on tiny seeded generators with planted answers."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from interp_gan.analyses.base import AnalysisData
from interp_gan.analyses.units.dissection import Dissection
from interp_gan.subject.protocol import Subject
from interp_gan.findings import Finding

PALETTE = torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.1, 0.9], [0.9, 0.9, 0.1], [0.9, 0.9, 0.9],
                        [0.1, 0.1, 0.1], [0.5, 0.5, 0.5]])
RED = torch.tensor([0.9, 0.1, 0.1])


def scenes(n: int, size: int = 32, seed: int = 0, red_from: int = 0) -> torch.Tensor:
    """Random rectangles on a random background, small red patches in most images (their top-left
    corner from ``red_from`` px in), mild noise. tests/analyses/test_replication.py uses them too."""
    g = torch.Generator().manual_seed(seed)
    img = PALETTE[torch.randint(0, len(PALETTE), (n,), generator=g)][:, :, None, None].repeat(1, 1, size, size)
    for i in range(n):
        for _ in range(3):
            c = PALETTE[torch.randint(0, len(PALETTE), (1,), generator=g)].view(3, 1, 1)
            y, x = torch.randint(0, size - 10, (2,), generator=g).tolist()
            img[i, :, y:y + 10, x:x + 10] = c
        if torch.rand(1, generator=g) < 0.8:
            y, x = torch.randint(red_from, size - 5, (2,), generator=g).tolist()
            img[i, :, y:y + 4, x:x + 4] = RED.view(3, 1, 1)
    return (img * 2 - 1 + 0.03 * torch.randn(img.shape, generator=g)).clamp(-1, 1)


class Planted(nn.Module):
    """Output = input; unit 0 of ``detect`` = r - g - b (high exactly where the output is red)."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Conv2d(3, 6, 3, padding=1)
        self.detect = nn.Conv2d(6, 5, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))  # non-spatial [N,3]
        with torch.no_grad():
            self.detect.weight[0].zero_()
            self.detect.bias[0] = 0
            self.detect.weight[0, :3, 0, 0] = torch.tensor([1.0, -1.0, -1.0])
            self.trunk.weight[:3].zero_()
            self.trunk.bias[:3] = 0
            for i in range(3):
                self.trunk.weight[i, i, 1, 1] = 1.0        # channels 0..2 copy r, g, b

    def forward(self, x):
        h = self.trunk(x)
        self.detect(h)
        self.head(h)
        return x


class Independent(nn.Module):
    """Random units on the input, but an output drawn independently of it (the null is true)."""

    def __init__(self, n: int, size: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, 2, 1))
        self.register_buffer("bank", scenes(n, size, seed=99))
        self.i = 0

    def forward(self, x):
        self.net(x)
        out = self.bank[self.i:self.i + len(x)]
        self.i += len(x)
        return out


def _data(n=32, size=32, seed=0):
    return AnalysisData(scenes(n, size, seed), torch.zeros(n, dtype=torch.long), batch_size=8)


def test_planted_red_unit_ranks_first_for_red():
    torch.manual_seed(0)
    f = Dissection(layers=["detect", "trunk"], n_perm=999, n_boot=200).run(
        Subject.from_module(Planted()), _data())
    units, long = f.tables["dissection_units"], f.tables["dissection_iou"]
    red = long[long.concept == "red"].sort_values("iou", ascending=False)
    assert (red.iloc[0].layer, red.iloc[0].unit) == ("detect", 0)
    row = units[(units.layer == "detect") & (units.unit == 0)].iloc[0]
    assert row.concept == "red" and row.label == "red" and bool(row.labelled)
    assert row.q_value < 0.05 and row.ci_low <= row.iou <= row.ci_high and row.iou > 0.3
    assert f.tables["dissection_top"].iloc[0][["layer", "unit"]].tolist() == ["detect", 0]
    assert f.arrays["top_images"].dtype == np.uint8 and f.arrays["top_images"].shape[:2] == (8, 4)
    assert f.arrays["topk_index"].shape == (len(units), 4)


def test_null_generator_labels_about_nominal_fraction():
    torch.manual_seed(0)
    n = 48
    f = Dissection(layers=["net.0", "net.2"], n_perm=499, n_boot=50, perm_block=16, control=False).run(
        Subject.wrap_module(Independent(n, 32)), _data(n))   # stateful: no probe call
    long = f.tables["dissection_iou"]
    tested = long[long.iou > 0]                       # concepts a unit never touches have p = 1
    assert len(tested) > 50
    assert (tested.p_value < 0.05).mean() < 0.15      # about uniform p-values: ~5% expected
    assert (long.q_value < 0.05).mean() <= 0.02       # BH keeps false labels rare
    assert f.tables["dissection_units"].labelled.mean() <= 0.1


def test_too_few_images_says_how_many_are_needed():
    with pytest.raises(ValueError, match="at least 8 images, got 5"):
        Dissection(layers=["detect"]).run(Subject.from_module(Planted()), _data(5))


def test_unknown_layer_raises_lookup_error():
    with pytest.raises(LookupError, match="detect"):
        Dissection(layers=["detekt"]).run(Subject.from_module(Planted()), _data(8))


def test_nan_activations_are_counted_and_left_out():
    torch.manual_seed(0)
    m = Planted()
    m.trunk.register_forward_hook(lambda mod, i, o: o.__setitem__((slice(None), 1, slice(0, 2), slice(0, 2)),
                                                                   float("nan")))  # 4 per image
    f = Dissection(layers=["trunk", "detect"], n_perm=99, n_boot=20).run(Subject.from_module(m), _data(16))
    assert any("trunk: 64 NaN" in note for note in f.notes), f.notes
    assert np.isfinite(f.tables["dissection_units"].iou).all()


def test_non_spatial_layer_is_image_level_units_and_finding_round_trips(tmp_path):
    torch.manual_seed(0)
    subject = Subject.from_module(Planted())
    f = Dissection(layers=["head.2", "detect"], n_perm=99, n_boot=20, memory_mb=0.001).run(subject, _data(16))
    units = f.tables["dissection_units"]
    assert (units.layer == "head.2").sum() == 3
    assert {"layer", "unit", "concept", "iou", "ci_low", "ci_high", "p_value", "q_value"} <= set(units.columns)
    assert any("spilled" in n for n in f.notes)      # the store went to disk at this tiny budget
    g = Finding.load(f.save(tmp_path / "d"))
    assert np.allclose(g.tables["dissection_units"].iou, units.iou)
    assert g.arrays["top_maps"].shape == f.arrays["top_maps"].shape
    ram = Dissection(layers=["head.2", "detect"], n_perm=99, n_boot=20).run(subject, _data(16))
    assert np.allclose(ram.tables["dissection_iou"].iou, f.tables["dissection_iou"].iou)


def test_report_section_builds_from_the_finding_alone(tmp_path):
    import plotly.graph_objects as go

    from interp_gan.reporting.section_dissection import dissection_section
    from interp_gan.reporting.sections import Cards, ReportContext

    torch.manual_seed(0)
    f = Dissection(layers=["detect"], n_perm=99, n_boot=20).run(Subject.from_module(Planted()), _data(16))
    sec = dissection_section(Finding.load(f.save(tmp_path / "d")), ReportContext())
    assert any(isinstance(b, go.Figure) for b in sec.blocks)
    cards = next(b for b in sec.blocks if isinstance(b, Cards)).cards     # pictures before the heatmaps
    assert sec.blocks.index(next(b for b in sec.blocks if isinstance(b, Cards))) < \
        sec.blocks.index(next(b for b in sec.blocks if isinstance(b, go.Figure)))
    assert len(cards) == 5 and all(c.images.dtype == np.uint8 and len(c.images) == 4 for c in cards)  # 5 units x 4
    assert all("IoU" in c.lines[0] and "[" in c.lines[0] for c in cards)                          # with its CI


# -- the optimised (batched) path against a plain reference ------------------------------------
def _tiny_stylenet(seed: int = 0, ch: int = 4):
    from interp_gan.models import StyleNet

    torch.manual_seed(seed)
    G = StyleNet(2, ch=ch, n_down=1, n_blocks=2, style_dim=8, latent_dim=4).eval()
    return Subject.from_stylenet(G, ["a", "b"]), G


def _reference(subject, data, layers, thresholds, n_perm, perm_block, test_res, seed, include=None):
    """Dissection written plainly, one image, unit and permutation at a time (module docstring of
    dissection.py): IoU = Σ|A∩M| / Σ|A∪M| with A = bilinear upsample > threshold on the uint8
    image's concept masks; p_image from Σ_j <pool(A_j), pool(M_π(j))> over within-block,
    within-style permutations; p_spatial from Σ_j <pool(A_j), roll(pool(M_j), shift_j)>."""
    import torch.nn.functional as F

    from interp_gan.analyses.units.concepts import concept_masks
    from interp_gan.analyses.units.dissection import hash_uniform
    from interp_gan.harvest.hooks import TraceDict

    acts, images = {n: [] for n in layers}, []
    with torch.no_grad():
        for _, c, s, z in data.batches():        # the same batches as the analysis (same float path)
            with TraceDict(subject.generator, layers) as td:
                images.append(subject.generate(c, s, z))
            for n in layers:
                acts[n].append(td[n].output.float())
    u8 = ((torch.cat(images).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    masks, names = concept_masks(u8.float() / 127.5 - 1)
    style = torch.stack([data.style_ids == k for k in range(subject.num_styles)], 1)
    masks = torch.cat([masks, style[:, :, None, None].expand(-1, -1, *masks.shape[-2:])], 1)
    names = names + [f"style:{s}" for s in subject.style_names]
    N, K, H, W = masks.shape
    # each block's permutations from its own generator, seeded by (seed, block start, stream):
    # stream 0 permutes within each target style, stream 4 ("style:*" concepts) across the block,
    # stream 2 draws each image's circular shift of its masks
    block_gen = lambda b, stream: torch.Generator().manual_seed(  # noqa: E731
        int(np.random.SeedSequence([seed, b, stream]).generate_state(1, np.uint64)[0]))
    perms, free, shifts = [], [], []
    r = min(test_res, H, W)
    for b in range(0, N, perm_block):
        S = min(perm_block, N - b)
        rand = torch.rand(n_perm, S, generator=block_gen(b, 0))
        st = data.style_ids[b:b + S]
        p = torch.empty(n_perm, S, dtype=torch.long)
        for i in range(n_perm):          # within each style: its images in random order, slot by slot
            for s in st.unique():
                idx = torch.nonzero(st == s)[:, 0]
                p[i, idx] = idx[torch.argsort(rand[i, idx])]
        perms.append(p)
        free.append(torch.argsort(torch.rand(n_perm, S, generator=block_gen(b, 4)), dim=1))
        shifts.append(torch.randint(0, r * r, (n_perm, S), generator=block_gen(b, 2)))
    n_style = subject.num_styles
    iou, pval = {}, {}
    for n in layers:
        a = torch.cat(acts[n])
        C = a.shape[1]
        inter, union = torch.zeros(C, K), torch.zeros(C, K)
        regions = torch.zeros(N, C, H, W, dtype=torch.bool)
        for i in range(N):
            for c in range(C):
                up = F.interpolate(a[i, c][None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
                t = float(thresholds[n][c])
                inc = 0.0 if include is None else float(include[n][c])
                if inc == 0:
                    regions[i, c] = up > t
                else:   # a tie at t: values within 1e-5 |t| of it, in with probability inc (hashed, seeded)
                    u = hash_uniform(seed, torch.tensor([i]), torch.tensor([c]), H * W).view(H, W)
                    tol = 1e-5 * abs(t)
                    regions[i, c] = (up > t + tol) | ((up >= t - tol) & (u < inc))
                for k in range(K):
                    inter[c, k] += (regions[i, c] & masks[i, k]).sum()
                    union[c, k] += (regions[i, c] | masks[i, k]).sum()
        iou[n] = torch.where(union > 0, inter / union, torch.zeros_like(union)).numpy()
        obs, null, s_null, scale = torch.zeros(C, K), torch.zeros(n_perm, C, K), torch.zeros(n_perm, C, K), 0
        for bi, b0 in enumerate(range(0, N, perm_block)):
            ap = F.adaptive_avg_pool2d(regions[b0:b0 + perm_block].float(), r)      # [S,C,r,r]
            mp = F.adaptive_avg_pool2d(masks[b0:b0 + perm_block].float(), r)        # [S,K,r,r]
            obs += torch.einsum("jcxy,jkxy->ck", ap, mp)
            scale = scale + torch.einsum("jc,jk->ck", ap.flatten(2).norm(dim=2), mp.flatten(2).norm(dim=2))
            for p in range(n_perm):
                null[p, :, :K - n_style] += torch.einsum("jcxy,jkxy->ck", ap, mp[perms[bi][p], :K - n_style])
                null[p, :, K - n_style:] += torch.einsum("jcxy,jkxy->ck", ap, mp[free[bi][p], K - n_style:])
                for j in range(len(ap)):   # mask j circularly shifted by (dy, dx) within its image
                    dy, dx = divmod(int(shifts[bi][p, j]), r)
                    s_null[p] += torch.einsum("cxy,kxy->ck", ap[j], torch.roll(mp[j], (dy, dx), dims=(1, 2)))
        p_img = ((1 + (null >= obs * (1 - 1e-5)).sum(0)) / (1 + n_perm)).numpy()
        p_sp = ((1 + (s_null >= obs - 1e-5 * scale).sum(0)) / (1 + n_perm)).numpy()
        p_sp[:, K - n_style:] = np.nan
        pval[n] = (p_img, p_sp)
    return iou, pval, names


@pytest.mark.parametrize("chunk", [None, 700])   # 700: chunks split images and units
def test_batched_path_matches_plain_reference(monkeypatch, chunk):
    import interp_gan.analyses.units.dissection as dissection

    if chunk is not None:
        monkeypatch.setattr(dissection, "_CPU_CHUNK", chunk)
    subject, _ = _tiny_stylenet(seed=1)
    n, layers = 20, ["encoder.0", "blocks.1.conv2", "decoder.net.1"]
    g = torch.Generator().manual_seed(1)
    data = AnalysisData(torch.rand(n, 3, 16, 16, generator=g) * 2 - 1, torch.arange(n) % 2,
                        z=torch.randn(n, 4, generator=g), batch_size=6)
    kw = dict(n_perm=19, perm_block=8, test_res=4, seed=3)
    f = Dissection(layers=layers, n_boot=0, memory_mb=0.01, control=False, **kw).run(subject, data)   # spills
    units, long = f.tables["dissection_units"], f.tables["dissection_iou"]
    thr = {name: units[units.layer == name].threshold.to_numpy() for name in layers}
    inc = {name: units[units.layer == name].tie_included.to_numpy() for name in layers}
    # (continuous activations: no ties, the strict rule; the tie path is checked in the saturated-unit tests)
    iou, pval, names = _reference(subject, data, layers, thr, include=inc, **kw)
    for name in layers:
        got = long[long.layer == name]
        C = len(thr[name])
        assert got.concept.tolist() == names * C
        assert np.allclose(got.iou.to_numpy().reshape(C, -1), iou[name], atol=1e-6), name
        p_img, p_sp = pval[name]
        same = lambda x, y: np.allclose(x, y, atol=1e-7, rtol=0, equal_nan=True)  # noqa: E731  (k / (n_perm+1))
        assert same(got.p_image.to_numpy().reshape(C, -1), p_img), name
        assert same(got.p_spatial.to_numpy().reshape(C, -1), p_sp), name
        assert same(got.p_value.to_numpy().reshape(C, -1), np.fmax(p_img, p_sp)), name
    assert (long.iou > 0).mean() > 0.2 and (long.p_value < 0.2).any()   # not a trivially empty table


# -- false discoveries on a randomly initialised generator -------------------------------------
def _unpaired(G, seed: int) -> Subject:
    """The random generator's own units and its own images, but each image is generated from an
    independent content, style and latent (its units are traced from the data's content with
    another independent style and latent): unit maps, images and style ids are independent, so
    the dissection's null hypothesis is exactly true for every unit x concept test."""
    g = torch.Generator().manual_seed(10_000 + seed)

    def generate(content, style_ids, z=None):
        n = len(content)
        image = G.generate(torch.rand(content.shape, generator=g) * 2 - 1,
                           torch.randint(0, 2, (n,), generator=g), torch.randn(n, G.latent_dim, generator=g))
        G.generate(content, torch.randint(0, 2, (n,), generator=g), torch.randn(n, G.latent_dim, generator=g))
        return image   # the hooks kept the units of the second call

    return Subject(generator=G, style_names=["a", "b"], _generate=generate)


def _random_init_runs(paired: bool, seeds=(0, 1, 2), n: int = 64):
    units, tests = [], []
    for seed in seeds:
        subject, G = _tiny_stylenet(seed)
        g = torch.Generator().manual_seed(seed)
        data = AnalysisData(torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, torch.arange(n) % 2,
                            z=torch.randn(n, 4, generator=g), batch_size=16)
        # iou_threshold=0: the q-value is the only gate, so the labelled fraction measures it alone
        f = Dissection(n_perm=999, n_boot=0, perm_block=16, iou_threshold=0.0, seed=seed, control=False).run(
            subject if paired else _unpaired(G, seed), data)
        units.append(f.tables["dissection_units"])
        tests.append(f.tables["dissection_iou"])
    return pd.concat(units), pd.concat(tests)


def test_random_init_generator_under_a_true_null_labels_at_most_nominal_fraction():
    """FDR control on a randomly initialised StyleNet (3 seeds x 51 units x 17 concepts).

    A random generator is *not* a null for the test the dissection runs (its units really do
    co-locate with its own output colours: next test), so this test makes the null exactly true
    with the random generator's own units and images: each image comes from an independent
    content/style/latent (``_unpaired``). It asserts that (a) the fraction of units labelled
    (q < 0.05; IoU threshold 0 so that q is the only gate) is at most the nominal 5% — under a
    complete null BH bounds P(any label) by 5%, measured 0/153; (b) the raw p-values are about
    uniform: 1–10% of the tested (IoU > 0) pairs have p < 0.05 (measured 4.2–5.9% over 4
    triples of seeds; 6.1% for seeds 0–2 since permutations are seeded per block); (c) at most 1%
    of all tests have q < 0.05 (measured 0). Broken variants, measured, each fail it: labels
    without the q filter (98.7% labelled), p-values without the permutation (null = 0: 98.7%
    labelled), q = p without BH (17.6% labelled, 3.5% of tests at q < 0.05), an identity
    "permutation" (no p < 0.05 at all: fails the lower bound of (b))."""
    torch.manual_seed(0)
    units, tests = _random_init_runs(paired=False)
    tested = tests[tests.iou > 0]
    labelled, p05, q05 = units.labelled.mean(), (tested.p_value < 0.05).mean(), (tests.q_value < 0.05).mean()
    print(f"true null: labelled {labelled:.3f} of {len(units)} units; p<0.05 in {p05:.3f} of {len(tested)} "
          f"tested pairs; q<0.05 in {q05:.4f} of {len(tests)} tests")
    assert len(units) == 153 and len(tested) > 1000
    assert labelled <= 0.05
    assert 0.01 <= p05 <= 0.10
    assert q05 <= 0.01


def test_random_init_generator_is_not_a_null_for_its_own_images():
    """The same random generators dissected on their own images: units of the last decoder conv
    (which writes the output pixels) co-locate image by image with the output's colours, so most
    of their tests are significant (measured 56–66% with p < 0.05 over 4 triples of seeds) and
    far more than 5% of all units are labelled at q < 0.05 (measured 16–21%). These are true discoveries for the
    hypothesis tested, which is why the FDR test above cannot use the random generator's own
    images as its null; it also shows that test has the power to label units when there is
    something to find."""
    torch.manual_seed(0)
    units, tests = _random_init_runs(paired=True)
    last = tests[(tests.layer == "decoder.net.4") & (tests.iou > 0)]
    labelled, p05 = units.labelled.mean(), (last.p_value < 0.05).mean()
    print(f"own images: labelled {labelled:.3f} of {len(units)} units; decoder.net.4 p<0.05 in {p05:.3f}")
    assert p05 >= 0.3
    assert labelled >= 0.08


@pytest.mark.parametrize("memory_mb", [64, 0.004])   # all in memory / most chunks spilled to disk
def test_activation_store_reads_across_chunks_in_memory_and_spilled(memory_mb):
    from interp_gan.harvest.store import ActivationStore

    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (10, 3, 8, 8), generator=g, dtype=torch.uint8)
    acts = torch.randn(10, 5, 4, 4, generator=g)
    store = ActivationStore(memory_mb)
    for s0 in range(0, 10, 4):                          # chunks 0-3, 4-7, 8-9
        store.add_images(s0, imgs[s0:s0 + 4])
        store.view("l").add(acts[s0:s0 + 4], s0)
    try:
        assert (store.spilled > 0) == (memory_mb < 1)
        im, a = store.read(2, 9, ["l"], "cpu")
        assert torch.equal(im, imgs[2:9]) and torch.equal(a["l"], acts[2:9])
        assert np.array_equal(store.take([9, 0, 5]), imgs[[9, 0, 5]].permute(0, 2, 3, 1).numpy())
        assert np.array_equal(store.take([5, 1], "l", 3), acts[[5, 1], 3].numpy())
    finally:
        store.close()


_SEG_FILE = '''
import torch

class Apples:
    """A stand-in for a segmentation net: label 1 ("apple") on the red pixels, else 0."""
    labels = ["background", "apple"]

    def __call__(self, images):                      # [N,3,H,W] in [-1,1] -> [N,H,W]
        return ((images[:, 0] > 0.2) & (images[:, 1] < -0.2) & (images[:, 2] < -0.2)).long()

def make():
    return Apples()
'''


def test_a_plugged_in_segmenter_adds_concepts_and_finds_the_planted_unit(tmp_path):
    """``segmenter="file.py:factory"`` (as in a pipeline TOML) adds "seg:<label>" concepts; the
    unit wired to red pixels is the top unit for the segmenter's "apple" (= red) label."""
    (tmp_path / "my_seg.py").write_text(_SEG_FILE)
    torch.manual_seed(0)
    f = Dissection(layers=["detect"], n_perm=999, n_boot=0, segmenter=f"{tmp_path / 'my_seg.py'}:make").run(
        Subject.from_module(Planted()), _data())
    long = f.tables["dissection_iou"]
    assert {"seg:background", "seg:apple"} <= set(long.concept)
    apple = long[long.concept == "seg:apple"].sort_values("iou", ascending=False)
    assert apple.iloc[0].unit == 0 and apple.iloc[0].iou > 0.3 and apple.iloc[0].q_value < 0.05
    with pytest.raises(TypeError, match="labels"):
        Dissection(layers=["detect"], segmenter=lambda x: x).run(Subject.from_module(Planted()), _data())


# -- issue #9: ties, co-occurrence, control, notes -----------------------------------------------
class Saturated(Planted):
    """Planted, with the red unit clamped: exactly 1.5 on every red pixel (r - g - b = 2.4 there),
    lower elsewhere (at most ~0.9); red covers ~1.25% of the pixels, so its 0.99 quantile is 1.5."""

    def __init__(self):
        super().__init__()
        self.sat = nn.Hardtanh(-1.5, 1.5)
        self.quant = nn.Identity()

    def forward(self, x):
        h = self.trunk(x)
        d = self.detect(h)
        self.sat(d)
        q = torch.round(d[:, :1])                 # a quantised unit: 2 on red, <= 1 elsewhere, 10 on one
        q[:, :, 0, 0] = 10.0                      # pixel per image (0.1%): the tie at 2 is inside its range
        self.quant(q)
        return x


def test_saturated_unit_tied_at_its_threshold_is_labelled_red():
    """Old code: region = act > 1.5 is empty, the unit is "black, IoU 0". Now ties at the unit's
    maximum are in the region: red, held-out IoU ~1; the showcase masks show that region;
    ties='strict' reproduces the old failure."""
    torch.manual_seed(0)
    kw = dict(layers=["sat", "quant"], n_perm=199, n_boot=100, control=False)
    f = Dissection(**kw).run(Subject.from_module(Saturated()), _data(64))
    units = f.tables["dissection_units"]
    row = units[(units.layer == "sat") & (units.unit == 0)].iloc[0]
    print(f"saturated unit: {row.concept} iou {row.iou:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}] q {row.q_value:.4f}")
    assert row.threshold == pytest.approx(1.5) and row.tie_mass > 0.01 and row.tie_included == 1
    assert row.label == "red" and row.iou > 0.8 and row.ci_low > 0.6 and row.q_value < 0.05
    top = f.tables["dissection_top"]
    t = int(np.flatnonzero((top.layer == "sat") & (top.unit == 0))[0])
    assert np.nanmean(f.arrays["top_masks"][t] > 0.5) > 0.005          # the shown region is not empty
    q = units[(units.layer == "quant") & (units.unit == 0)].iloc[0]   # a tie inside the range: split
    assert 0 < q.tie_included < 1 and q.concept == "red"
    strict = Dissection(**kw, ties="strict").run(Subject.from_module(Saturated()), _data(64))
    old = strict.tables["dissection_units"]
    assert old[(old.layer == "sat") & (old.unit == 0)].iloc[0].iou == 0


def test_tie_split_regions_do_not_depend_on_blocks_or_chunks(monkeypatch):
    """The random share of a split tie is a hash of (seed, image, unit, pixel): the same regions
    (so the same all-image IoUs) whatever the permutation blocks (= shards) or chunks."""
    import interp_gan.analyses.units.dissection as dissection

    torch.manual_seed(0)
    kw = dict(layers=["quant"], n_perm=19, n_boot=0, control=False)
    a = Dissection(perm_block=8, **kw).run(Subject.from_module(Saturated()), _data(32)).tables["dissection_iou"]
    monkeypatch.setattr(dissection, "_CPU_CHUNK", 700)
    b = Dissection(perm_block=16, **kw).run(Subject.from_module(Saturated()), _data(32)).tables["dissection_iou"]
    assert np.array_equal(a.iou.to_numpy(), b.iou.to_numpy())


def test_top_quantile_value_helper_is_tie_aware():
    from interp_gan.harvest.stats import tie_aware_threshold, top_quantile_value

    relu = np.r_[np.zeros(995), np.arange(1.0, 6.0)][None]          # 0 on 99.5%: floor tie
    sat = np.r_[np.linspace(0, 1, 970), np.full(30, 6.0)][None]     # saturated at 6 on 3%
    t = tie_aware_threshold(np.concatenate([relu, sat]), 0.99)
    assert t.include.tolist() == [0.0, 1.0]
    assert np.allclose(top_quantile_value(np.concatenate([relu, sat]), 0.99), [3.0, 6.0])


class CoOccur(nn.Module):
    """Output = input. Units (layer "units"): 0 = r - g - b (a real red detector); 1 = a 16x16
    square at a place given by z, on every image that contains red, unrelated to where the red is
    (image-level co-occurrence); 2 = the top band of style-0 images, where style-0 images have
    their red (co-occurrence through the style and a spatial prior)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)     # something for random_init to redraw
        self.units = nn.Identity()

    def forward(self, x, style_ids, z):
        rgb = (x + 1) / 2
        red = ((rgb[:, 0] > 0.6) & (rgb[:, 1] < 0.3) & (rgb[:, 2] < 0.3)).float()
        has = (red.flatten(1).sum(1) > 0).float()[:, None, None]
        N, _, H, W = x.shape
        ramp = torch.linspace(0, 0.01, W)[None, None, :]
        yy, xx = torch.arange(H)[None, :, None], torch.arange(W)[None, None, :]
        y0, x0 = z[:, 0].long()[:, None, None], z[:, 1].long()[:, None, None]
        square = ((yy >= y0) & (yy < y0 + 16) & (xx >= x0) & (xx < x0 + 16)).float()
        band = (yy < 12).float() * (style_ids == 0).float()[:, None, None]
        self.units(torch.stack([(rgb[:, 0] - rgb[:, 1] - rgb[:, 2]).clamp_min(0), has * square * (1 + ramp),
                                band * (1 + ramp)], 1))
        self.conv(x)
        return x


def cooccur_data(n: int = 64, size: int = 32, seed: int = 0) -> AnalysisData:
    g = torch.Generator().manual_seed(seed)
    pal = PALETTE[[0, 1, 2, 5]]   # green, blue, yellow, grey: no red, and every colour in several images
    img = pal[torch.randint(0, len(pal), (n,), generator=g)][:, :, None, None].repeat(1, 1, size, size)
    style = torch.arange(n) % 2
    for i in range(n):
        for _ in range(2):
            y, x = torch.randint(0, size - 10, (2,), generator=g).tolist()
            img[i, :, y:y + 10, x:x + 10] = pal[torch.randint(0, len(pal), (1,), generator=g)].view(3, 1, 1)
        if style[i] == 0:                                  # style 0: red in the top band, always
            y, x = torch.randint(0, 5, (1,), generator=g).item(), torch.randint(0, size - 8, (1,), generator=g).item()
        elif torch.rand(1, generator=g) < 0.5:             # style 1: red anywhere, half of the images
            y, x = torch.randint(0, size - 8, (2,), generator=g).tolist()
        else:
            continue
        img[i, :, y:y + 8, x:x + 8] = RED.view(3, 1, 1)
    z = torch.randint(0, size - 16, (n, 2), generator=g).float()
    return AnalysisData(img * 2 - 1, style, z=z, batch_size=16)


def test_cooccurring_units_are_not_labelled_but_the_red_unit_is():
    """Old null (masks shuffled across all images of a block): the square unit (fires on images
    containing red, not on the red) and the band unit (style-0 images' top band, where their red
    is) both got "red" with q < 0.05. Now the band unit fails the style-stratified image null and
    the square unit the within-image shift null; the real red unit passes both (measured: red unit
    p_image = p_spatial = 0.002, q 0.017; square p_image 0.002, p_spatial 0.072, q 0.52; band
    p_image 1.0, p_spatial 0.002)."""
    G = CoOccur()
    subject = Subject(generator=G, style_names=["a", "b"], _generate=lambda c, s, z=None: G(c, s, z))
    f = Dissection(layers=["units"], quantile=0.8, n_perm=499, n_boot=50, control=False).run(subject,
                                                                                             cooccur_data())
    units, long = f.tables["dissection_units"].set_index("unit"), f.tables["dissection_iou"]
    red = long[long.concept == "red"].set_index("unit")
    print(red[["iou", "p_image", "p_spatial", "q_value"]], units[["concept", "iou", "label"]])
    assert units.loc[0, "label"] == "red" and red.loc[0, "q_value"] < 0.05
    assert red.loc[1, "p_image"] < 0.05 and red.loc[1, "p_spatial"] > 0.05      # fails the spatial null
    assert red.loc[2, "p_spatial"] < 0.05 and red.loc[2, "p_image"] > 0.2       # fails the stratified null
    assert red.loc[1, "q_value"] >= 0.05 and red.loc[2, "q_value"] >= 0.05
    # neither is labelled red; both do fire on style-a images more than on style-b ones, and the
    # image-level "style:a" concept (tested across the styles) may label them for that
    assert units.loc[1, "label"] != "red" and units.loc[2, "label"] != "red"


def test_random_init_control_table_and_headline():
    from interp_gan.reporting.section_dissection import dissection_section
    from interp_gan.reporting.sections import ReportContext

    torch.manual_seed(0)
    G = Planted()
    G.gain = nn.Parameter(torch.ones(2))      # a bare parameter no reset_parameters re-draws: kept in the control
    subject = Subject.from_module(G)
    before = {k: v.clone() for k, v in subject.generator.state_dict().items()}
    with pytest.warns(UserWarning, match=r"\(gain\)"):
        f = Dissection(layers=["detect", "trunk"], n_perm=199, n_boot=20).run(subject, _data(32))
    assert all(torch.equal(v, subject.generator.state_dict()[k]) for k, v in before.items())   # restored
    c = f.tables["dissection_control"]
    assert c.layer.tolist() == ["detect", "trunk", "all"]
    assert {"units", "labelled_trained", "labelled_control", "frac_trained", "frac_control",
            "tests_q05_trained", "tests_q05_control"} <= set(c.columns)
    tot = c.iloc[-1]
    units = f.tables["dissection_units"]
    assert tot.labelled_trained == units.labelled.sum() and tot.units == len(units)
    assert c.iloc[0].labelled_trained >= 1          # the planted red unit
    assert any("random-init control" in n for n in f.notes)
    from interp_gan.reporting.numbers import pct
    sec = dissection_section(f, ReportContext())
    head = sec.blocks[0]
    assert f"{int(tot.labelled_trained)} of {int(tot.units)}" in head and "labelled at q" in head
    assert pct(tot.frac_trained) in head
    # three control draws (the default): draw 0 is the per-layer table's control; the verdict reads the spread
    d = f.tables["dissection_control_draws"]
    assert sorted(set(d.draw)) == [0, 1, 2] and sorted(set(d.seed)) == [0, 1, 2]
    d0 = d[(d.draw == 0) & (d.layer == "all")].iloc[0]
    assert d0.labelled == tot.labelled_control and d0.units == tot.units
    mean = d[d.layer == "all"].labelled.mean() / tot.units
    assert f"random init {pct(mean)} (3 draws:" in head and "3 random-init draws" in head
    # the partly trained control, said beside the comparison (old code: only a warning at run time)
    kept = [n for n in f.notes if n.startswith("random-init control keeps")]
    assert len(kept) == 1 and "2 trained value(s) in 1 tensor(s)" in kept[0] and "(gain)" in kept[0]
    assert sec.blocks[1].startswith("<p><i>The random-init control keeps 2 trained value(s)")
    assert "the control is partly trained" in head and "partly trained" in sec.claims[0].baseline
    f.notes = [n for n in f.notes if n not in kept]           # a fully random control: no such sentence
    plain = dissection_section(f, ReportContext())
    assert not any("partly trained" in str(b) for b in plain.blocks) and "partly" not in plain.claims[0].baseline


def test_floor_and_undefined_bootstrap_replicates_are_noted():
    """n_perm=19: the red unit's p sits at the floor 1/20, said in a note. A dead unit (0
    everywhere) whose chosen concept is absent (no black pixel in these images) has an empty
    union in every replicate: counted in a note and its CI is NaN (old code: a silent (0, 0))."""
    torch.manual_seed(0)
    m = Planted()
    m.detect.register_forward_hook(lambda mod, i, o: o.__setitem__((slice(None), 4), 0.0))
    content = _data(32).content.clamp(-0.5, 1)        # nothing darker than black's value cut
    f = Dissection(layers=["detect"], n_perm=19, n_boot=50, control=False).run(
        Subject.from_module(m), AnalysisData(content, torch.zeros(32, dtype=torch.long), batch_size=8))
    units = f.tables["dissection_units"]
    dead = units[units.unit == 4].iloc[0]
    assert np.isnan(dead.ci_low) and np.isnan(dead.ci_high)
    assert any("empty union" in n and "no CI" in n for n in f.notes), f.notes
    assert any("permutation floor 1/(n_perm+1) = 0.05" in n for n in f.notes), f.notes
