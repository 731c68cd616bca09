"""harvest() traces any nn.Module, not only a Subject's generator (e.g. a discriminator)."""
import torch

from interp_gan.analyses.base import AnalysisData
from interp_gan.harvest import harvest
from interp_gan.harvest.stats import Moments, TopK


def test_harvest_a_plain_module_with_its_own_forward():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1))
    images = torch.randn(10, 3, 8, 8)
    images[7] += 5.0                                   # image 7 drives every unit of layer 0 hardest
    data = AnalysisData(images, torch.zeros(10, dtype=torch.long), batch_size=4)
    stats = harvest(D, data, ["0", "2"], lambda layer, C: {"top": TopK(C, k=1), "m": Moments(C)})
    with torch.no_grad():
        want = D[0](images).amax(dim=(2, 3)).argmax(0)
    assert torch.equal(stats["0"]["top"].indices[:, 0].cpu(), want)
    seen = []
    harvest(D, data, ["2"], lambda layer, C: Moments(C),
            forward=lambda x, s, z: seen.append(len(x)) or D(x * 2))
    assert seen == [4, 4, 2]
