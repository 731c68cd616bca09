"""Embeddings: well-separated style clusters must stay separable in 2-D; small samples fall back to PCA."""
import numpy as np
import pytest
import torch
from torch import nn

from interp_gan.analyses.base import AnalysisData, build_analysis
from interp_gan.analyses.embedding import Embedding, knn_accuracy  # noqa: F401  (registers "embedding")
from interp_gan.subject.protocol import Subject

D = 8


class _Colourer(nn.Module):
    """Adds the code's first three entries as a colour; ``mix`` (1x1 conv) sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 4, 1)
        self.out = nn.Conv2d(4, 3, 1)

    def forward(self, content, code):
        return self.out(self.mix(0.1 * content + code[:, :3, None, None]))


def _clustered_subject(seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(3, D, generator=g)                    # three styles, far apart
    G = _Colourer()

    def style_code(ids, z):
        return centres[ids] + 0.1 * z

    return Subject(generator=G, style_names=["a", "b", "c"], _generate=lambda c, s, z=None: G(c, style_code(s, z)),
                   _style_code=style_code, _stylize_code=lambda c, code: G(c, code), latent_dim=D, style_dim=D)


def _data(n, seed=0, styles=3):
    g = torch.Generator().manual_seed(seed)
    return AnalysisData(torch.rand(n, 3, 16, 16, generator=g) * 2 - 1, torch.arange(n) % styles)


def test_knn_accuracy_separates_clusters_from_shuffled_labels():
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    x = rng.standard_normal((60, 4)) * 0.1 + 5 * np.eye(4)[labels]
    assert knn_accuracy(x, labels) == 1.0
    assert knn_accuracy(x, rng.permutation(labels)) < 0.7


def test_pca_keeps_planted_style_clusters_apart():
    torch.manual_seed(0)
    f = build_analysis("embedding", methods=("pca",), layer="mix").run(_clustered_subject(), _data(30))
    q = f.tables["embedding_quality"].set_index(["space", "method"])
    assert (q.knn_accuracy >= 0.9).all() and (q.chance < 0.4).all()
    assert set(f.tables["embedding"]["style"]) == {"a", "b", "c"}


@pytest.mark.slow  # numba compiles UMAP on first use: ~8 s CPU, 15-30 s wall on a shared 2-core machine
def test_umap_and_pca_keep_planted_style_clusters_apart(capsys, monkeypatch):
    import interp_gan.analyses.embedding as e
    monkeypatch.setattr(e, "_UMAP_COMPILED", False)
    torch.manual_seed(0)
    f = build_analysis("embedding", n_samples=45, n_epochs=50, layer="mix").run(_clustered_subject(), _data(45))
    emb, q = f.tables["embedding"], f.tables["embedding_quality"]
    assert list(emb.columns)[:6] == ["space", "method", "x", "y", "style", "style_id"]
    assert set(zip(emb.space, emb.method)) == {(s, m) for s in ("style_code", "activation") for m in ("umap", "pca")}
    assert len(emb) == 4 * 45
    got = q.set_index(["space", "method"]).knn_accuracy
    assert (got >= 0.9).all(), got                                   # styles stay separable in every map
    assert (q.chance < 0.4).all()
    assert capsys.readouterr().out.count("numba compiles") == 1        # said once, before the first fit


def test_small_sample_falls_back_to_pca_and_says_so():
    f = build_analysis("embedding", spaces=("style_code",), n_samples=9).run(_clustered_subject(), _data(9))
    assert set(f.tables["embedding"].method) == {"pca"}
    assert any("PCA only" in n for n in f.notes)


def test_module_without_latent_embeds_activations_of_a_default_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
    f = build_analysis("embedding", methods=("pca",)).run(Subject.from_module(net), _data(6, styles=1))
    assert set(f.tables["embedding"].space) == {"activation"}
    assert any("style_code space skipped" in n for n in f.notes)
    assert any("no layer given, used '2'" in n for n in f.notes)     # the middle conv of [0, 2]
    with pytest.raises(LookupError):
        build_analysis("embedding", layer="nope").run(Subject.from_module(net), _data(6, styles=1))
    with pytest.raises(ValueError, match="tsne"):
        build_analysis("embedding", methods=("tsne",)).run(Subject.from_module(net), _data(6, styles=1))


def test_report_section_has_one_scatter_per_space():
    from interp_gan.reporting.section_embedding import embedding_section
    from interp_gan.reporting.sections import ReportContext, Table
    f = build_analysis("embedding", methods=("pca",), layer="mix", n_samples=12).run(_clustered_subject(), _data(12))
    sec = embedding_section(f, ReportContext())
    assert set(sec.figures) == {"embedding_style_code", "embedding_activation"}
    fig = sec.figures["embedding_style_code"]
    assert [t.name for t in fig.data] == ["a", "b", "c"] and sum(len(t.x) for t in fig.data) == 12
    assert any(isinstance(b, Table) for b in sec.blocks)


def _with_encoder(subject, shift: int):
    """A style encoder that reads the style from the image (its mean brightness encodes the
    style id) and puts it at the mapping's centre of style (id + shift) % 3: shift 0 is an
    encoder that agrees with the mapping network, shift 1 one that puts every style elsewhere."""
    centres = subject.style_code(torch.arange(3), torch.zeros(3, D))

    def encode(images, ids):
        read = ((images.mean((1, 2, 3)) + 1) * 1.5).floor().long().clamp(0, 2)   # the image, not ids
        return centres[(read + shift) % 3] + 0.1 * torch.randn(len(images), D)
    subject._encode_style = encode
    return subject


def _style_data(n, seed=0):
    data = _data(30, seed)
    labels = torch.arange(n) % 3
    data.style_images = (labels.float()[:, None, None, None] + 0.5) / 1.5 - 1 + torch.zeros(n, 3, 8, 8)
    data.style_labels = labels
    return data


@pytest.mark.parametrize("shift, expect", [(0, 1.0), (1, 0.0)])
def test_reference_codes_land_where_the_mapping_puts_their_style(shift, expect):
    torch.manual_seed(0)
    sub = _with_encoder(_clustered_subject(), shift)
    f = build_analysis("embedding", methods=("pca",), layer="mix", n_samples=48).run(sub, _style_data(24))
    q = f.tables["embedding_quality"].set_index(["space", "method"])
    assert q.loc[("reference_code", "vs_mapping"), "knn_accuracy"] == expect
    assert q.loc[("reference_code", "original"), "knn_accuracy"] == 1.0       # the codes still cluster by style
    emb = f.tables["embedding"]
    assert (emb[emb.space == "reference_code"].groupby("style").size() == 8).all()
    from interp_gan.reporting import ReportContext
    from interp_gan.reporting.section_embedding import embedding_section
    assert embedding_section(f, ReportContext()).references == ["choi2020starganv2"]


def test_reference_codes_are_skipped_with_a_reason():
    f = build_analysis("embedding", methods=("pca",), layer="mix").run(_clustered_subject(), _style_data(12))
    assert any("reference_code space skipped: this subject has no style encoder" in n for n in f.notes)
    f = build_analysis("embedding", methods=("pca",), layer="mix").run(_with_encoder(_clustered_subject(), 0), _data(12))
    assert any("no real style images" in n for n in f.notes)
    assert "reference_code" not in set(f.tables["embedding"].space)


def test_the_finding_carries_the_analysis_datas_fingerprint_not_the_checkpoints():
    # a checkpoint's metadata carries its training data's fingerprint; `interp-gan report` refused
    # the demo's report because embedding's provenance let that one win
    subject = _clustered_subject()
    subject.meta = {**subject.meta, "data_fingerprint": "the-training-data"}
    data = _data(60)
    data.fingerprint = "analysed"
    f = Embedding(n_samples=60, methods=("pca",)).run(subject, data)
    assert f.provenance["data_fingerprint"] == "analysed"


def test_a_one_style_model_is_not_said_to_separate_styles():
    """Old code: a one-style model's report read "Styles separate in 1 space(s): leave-one-out kNN
    accuracy activation 1.00 (chance 1.00)"."""
    from interp_gan.reporting.section_embedding import embedding_section
    from interp_gan.reporting.sections import ReportContext
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
    subject = Subject.from_module(net, style_names=["translated"])
    f = build_analysis("embedding", methods=("pca",)).run(subject, _data(12, styles=1))
    lead = embedding_section(f, ReportContext()).blocks[0]
    assert "separate in" not in lead and "One style (translated)" in lead and "nothing to separate" in lead
    f3 = build_analysis("embedding", methods=("pca",), layer="mix", n_samples=12).run(_clustered_subject(), _data(12))
    assert "Style separability in 2 space(s)" in embedding_section(f3, ReportContext()).blocks[0]
