"""A graph that cannot run a batch (its output for two images differs from theirs one at a time)
runs one image per call; a hook would then fire once per image and keep only the last call, so the
pipeline gives such a subject batches of one and a dissection sees every image."""
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx2torch")
from torch import nn  # noqa: E402

from interp_gan.config import PipelineConfig  # noqa: E402
from interp_gan.pipeline import analysis_data  # noqa: E402
from interp_gan.subject.loading import load_subject  # noqa: E402


class BatchMixing(nn.Module):
    """A gain from the mean over the batch axis: one image alone is unchanged by it, a batch of two is
    not (as a graph exported with a batch statistic baked in)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = h * torch.sigmoid(h.mean(0, keepdim=True))
        return torch.tanh(self.b(h))


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    p = tmp_path_factory.mktemp("mix") / "mix.onnx"
    torch.onnx.export(BatchMixing().eval(), (torch.rand(1, 3, 32, 32),), str(p), input_names=["image"],
                      output_names=["out"], opset_version=17, dynamo=False,
                      dynamic_axes={"image": {0: "N"}, "out": {0: "N"}})
    return load_subject(p, device="cpu")


def test_a_graph_that_cannot_batch_is_marked_and_gets_batches_of_one(subject):
    assert subject.meta["one_image_per_call"] is True
    assert "one image per call" in subject.meta["input_contract"]["batched"]
    data = analysis_data(subject, PipelineConfig(n_images=8, image_size=32, batch_size=4))
    assert data.batch_size == 1


def test_dissection_of_a_graph_that_cannot_batch_sees_every_image(subject):
    import interp_gan as ig

    data = analysis_data(subject, PipelineConfig(n_images=8, image_size=32, batch_size=4))
    layer = next(n for n, m in subject.generator.named_modules() if isinstance(m, nn.Conv2d))
    f = ig.build_analysis("dissection", layers=[layer], n_perm=20, n_boot=20, control=False).run(subject, data)
    assert not f.skipped
    units = f.tables["dissection_units"]
    assert len(units) == 8 and units["iou"].notna().all()
