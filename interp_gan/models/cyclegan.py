"""CycleGAN's ResNet generator in the reference layout, so a third party's ``.pth`` loads.

    G = CycleGANGenerator(n_blocks=9)                       # resnet_9blocks, instance norm
    G.load_state_dict(torch.load("latest_net_G_A.pth", weights_only=True))
    out = G(content)                                        # [N,3,H,W] in [-1,1]

Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks" (ICCV 2017). The module indices match the reference implementation
(``model.1.weight``, ``model.10.conv_block.1.weight``, ...), which is what its checkpoints
name; instance norm without affine parameters, so every conv has a bias.
"""
from __future__ import annotations

from torch import Tensor, nn

from interp_gan.models.registry import register_model

__all__ = ["CycleGANGenerator", "infer_cyclegan_config"]


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, dropout: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


@register_model("cyclegan")
class CycleGANGenerator(nn.Module):
    def __init__(self, ngf: int = 64, n_blocks: int = 9, dropout: bool = False, in_ch: int = 3, out_ch: int = 3) -> None:
        super().__init__()
        m: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2 ** i
            m += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
        m += [ResnetBlock(ngf * 4, dropout) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            m += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                  nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
        m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*m)
        self.size_multiple = 4     # two stride-2 convs, two x2 transposed convs: other sizes come back larger

    def forward(self, content: Tensor) -> Tensor:
        return self.model(content)


def infer_cyclegan_config(state_dict: dict) -> dict:
    """(ngf, n_blocks, dropout) from a reference-layout state_dict's keys and shapes."""
    if "model.1.weight" not in state_dict:
        raise ValueError("not a CycleGAN reference-layout generator state_dict "
                         "(expected keys like 'model.1.weight', 'model.10.conv_block.1.weight')")
    ngf = state_dict["model.1.weight"].shape[0]
    blocks = {int(k.split(".")[1]) for k in state_dict if ".conv_block." in k}
    dropout = any(".conv_block.6." in k for k in state_dict)
    return {"ngf": int(ngf), "n_blocks": len(blocks), "dropout": dropout}
