"""Shared tiny seeded fixtures: a 2-style StyleNet subject with independent classifiers."""
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see interp_gan/cli.py main()

import pytest  # noqa: E402
import torch  # noqa: E402

from interp_gan.analyses.base import AnalysisData
from interp_gan.subject.protocol import Subject
from interp_gan.models import RandomFeatureNet, StyleClassifier, StyleDiscriminator, StyleNet

# at most 2 torch threads, shared out among pytest-xdist's workers (`make test` runs 2: one thread each)
torch.set_num_threads(max(1, min(2, torch.get_num_threads()) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device for tests that honour it (cpu or cuda)")


@pytest.fixture
def device(request):
    d = request.config.getoption("--device")
    if d == "cuda" and not torch.cuda.is_available():
        pytest.skip("--device cuda given but no CUDA device")
    return torch.device(d)


def make_tiny_subject(num_styles: int = 2, seed: int = 0) -> Subject:
    torch.manual_seed(seed)
    G = StyleNet(num_styles, ch=4, n_down=1, n_blocks=2, style_dim=8, latent_dim=4)
    D = StyleDiscriminator(num_styles, ch=4, n_layers=2)
    clf = StyleClassifier(num_styles, "rgb", ch=4)
    tex = StyleClassifier(num_styles, "texture", ch=4)
    names = [f"style{i}" for i in range(num_styles)]
    return Subject.from_stylenet(G, names, discriminator=D, classifier=clf, texture_classifier=tex,
                                 feature_net=RandomFeatureNet(seed=1, channels=(4, 8)),
                                 meta={"checkpoint_sha256": "test"}).eval()


def make_tiny_data(subject: Subject, n: int = 16, size: int = 32, seed: int = 0) -> AnalysisData:
    g = torch.Generator().manual_seed(seed)
    content = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    style_images = torch.rand(2 * subject.num_styles * 4, 3, size, size, generator=g) * 2 - 1
    style_labels = torch.arange(len(style_images)) % subject.num_styles
    return AnalysisData(content=content, style_ids=torch.arange(n) % subject.num_styles,
                        z=subject.sample_z(n, seed) if subject.latent_dim else None,
                        style_images=style_images, style_labels=style_labels, fingerprint="tiny", batch_size=8)


@pytest.fixture
def tiny_subject():
    return make_tiny_subject()


@pytest.fixture
def tiny_data(tiny_subject):
    return make_tiny_data(tiny_subject)


_STATISTICS = Path(__file__).resolve().parent / "statistics"


def pytest_collection_modifyitems(config, items):
    """tests/statistics holds the coverage and null-calibration simulations (thousands of replicates
    each): `make test` runs them, `make test-fast` (the inner loop, -m "not slow") leaves them out."""
    for item in items:
        if _STATISTICS in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)
