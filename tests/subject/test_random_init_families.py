"""Subject.random_init on every model family we ship: the control is the network as constructed.

"Trained" here: every float state_dict entry (weights, BatchNorm running statistics, StyleGAN2's
``w_avg`` and noise maps, constants too) moved away from its initial value. Inside the control
every entry must differ from that trained value, except the buffers a module declares constant
(``random_init_constants``: StyleGAN2's resampling filters, CUT's blur filters, StyleGAN3's up / down filters
and its input's view ``transform``), which must keep it; nothing is
reported kept; learned buffers are back at their construction values; and on exit every entry is
the trained one again. Old code: StyleGAN2's ``mapping.w_avg`` stayed trained, so a truncated
(psi < 1) control still pulled every w towards the trained average.
"""
import warnings

import pytest
import torch

from interp_gan.models.animegan import AnimeGANv2Generator
from interp_gan.models.cartoongan import CartoonGANGenerator
from interp_gan.models.cyclegan import CycleGANGenerator
from interp_gan.models.discriminator import StyleDiscriminator
from interp_gan.models.fast_neural_style import FastNeuralStyleNet
from interp_gan.models.munit import MUNITTranslator
from interp_gan.models.resnet_generator import ResnetGenerator
from interp_gan.models.rosinality_discriminator import load_discriminator
from interp_gan.models.rosinality_stylegan2 import load_generator
from interp_gan.models.stargan import StarGANGenerator
from interp_gan.models.stargan_v2 import StarGANv2
from interp_gan.models.stylenet import StyleNet
from interp_gan.models.ugatit import UGATITGenerator
from interp_gan.models.unet_generator import UnetGenerator
from interp_gan.subject.protocol import Subject
from tests.models.cut_reference import reference_state_dict as cut_state_dict
from tests.models.rosinality_reference import discriminator_state_dict as rosinality_d
from tests.models.rosinality_reference import generator_state_dict as rosinality_sd
from tests.subject.nvlabs_snapshot import tiny_discriminator, tiny_generator
from tests.subject.nvlabs_snapshot_sg3 import tiny_sg3
from tests.subject.test_cyclegan_family import hand_built
from tests.subject.test_stargan_v2_loading import TINY

FAMILIES = {
    "stylenet": lambda: StyleNet(2, ch=4, n_down=1, n_blocks=1, style_dim=8, latent_dim=4, style_encoder=True),
    "cyclegan": lambda: CycleGANGenerator(ngf=4, n_blocks=1),
    "resnet_generator_bn": lambda: ResnetGenerator.from_state_dict(hand_built(ngf=4, n_blocks=1, norm="bn")
                                                                   .state_dict()),
    "resnet_generator_cut": lambda: ResnetGenerator.from_state_dict(cut_state_dict(ngf=4, n_blocks=1, norm="batch")),
    "unet_batch": lambda: UnetGenerator(num_downs=5, ngf=4, norm="batch"),
    "fast_neural_style": lambda: FastNeuralStyleNet(widths=(4, 8, 8), n_res=2),
    "stargan_v1": lambda: StarGANGenerator(conv_dim=8, c_dim=3, repeat_num=1),
    "stargan_v2": lambda: StarGANv2(**TINY),
    "stylegan2_conditional": lambda: tiny_generator(16, c_dim=2, seed=1),
    "stylegan2_resnet": lambda: tiny_generator(16, architecture="resnet", seed=2),
    "style_discriminator": lambda: StyleDiscriminator(2, ch=4, n_layers=2),
    "stylegan2_discriminator": lambda: tiny_discriminator(16, c_dim=2, seed=3),
    "animegan_v2": lambda: AnimeGANv2Generator(widths=(4, 8, 8, 12), num_res=2),   # GroupNorm affines back to 1 / 0
    "cartoongan": lambda: CartoonGANGenerator(widths=(4, 8, 8), n_res=2),          # instance-norm affines too
    "ugatit": lambda: UGATITGenerator(ngf=2, n_blocks=1, img_size=16),     # (Ada)ILN rho / gamma / beta reset
    "munit": lambda: MUNITTranslator(dim=4, style_dim=3, n_downsample=1, n_res=1, mlp_dim=8, activ="prelu"),
    "stylegan2_rosinality": lambda: load_generator({"g_ema": rosinality_sd(), "latent_avg": torch.ones(8)})[0],
    "stylegan2_rosinality_discriminator": lambda: load_discriminator(rosinality_d()),
    "stylegan3_t": lambda: tiny_sg3(seed=5)[0],
    "stylegan3_r_conditional": lambda: tiny_sg3(seed=6, cfg="r", c_dim=2)[0],
}
CONSTANTS = ("resample_filter", ".blur.filt", "up_filter", "down_filter", "input.transform")


def _trained(name: str) -> torch.nn.Module:
    """The family's tiny model with every float entry moved off its initial value (seeded)."""
    G = FAMILIES[name]().eval()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for v in G.state_dict().values():
            if v.is_floating_point():
                v.add_(0.25 + 0.1 * torch.randn(v.shape, generator=g))
    return G


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_control_redraws_every_learned_value_and_restores_them(name):
    G = _trained(name)
    trained = {k: v.clone() for k, v in G.state_dict().items()}
    s = Subject.wrap_module(G)     # G as it is (a discriminator is no content -> image module)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # nothing kept: no "keeps trained values" warning
        with s.random_init(seed=0) as c:
            r = c.random_init_report
            assert r.kept == {} and r.notes() == []
            live = G.state_dict()
            for k, v in live.items():
                if not v.is_floating_point():
                    continue
                if k in r.constants:
                    assert k.endswith(CONSTANTS) and torch.equal(v, trained[k]), k
                else:
                    assert not torch.equal(v, trained[k]), f"{k} kept its trained value"
            for k, v in live.items():                  # learned buffers at their construction values
                if k.endswith(("w_avg", "running_mean")):
                    assert torch.equal(v, torch.zeros_like(v)), k
                if k.endswith(("running_var", "magnitude_ema")):
                    assert torch.equal(v, torch.ones_like(v)), k
                if k.endswith("input.affine.weight"):       # StyleGAN3's input transform starts as the identity
                    assert torch.equal(v, torch.zeros_like(v)) and torch.equal(
                        live[k.replace("weight", "bias")], torch.tensor([1.0, 0, 0, 0])), k
            control = {k: v.clone() for k, v in live.items()}
    assert s.random_init_report is None
    for k, v in G.state_dict().items():
        assert torch.equal(v, trained[k]), f"{k} not restored"
    with s.random_init(seed=0):                        # seeded: the same control again
        assert all(torch.equal(v, control[k]) for k, v in G.state_dict().items())


def test_a_truncated_stylegan2_control_pulls_towards_zero_not_the_trained_average():
    """psi = 0 maps every z to w_avg: the trained average in the model, zeros in the control (the
    average a new network starts from). Old code: the trained average in both."""
    G = tiny_generator(16, seed=4)
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        w_avg = G.mapping.w_avg.clone()
        assert w_avg.abs().min() > 0
        assert torch.allclose(G.mapping(z, None, truncation_psi=0.0), w_avg.expand(3, G.num_ws, -1))
        with Subject.from_module(G).random_init(seed=0):
            assert torch.equal(G.mapping(z, None, truncation_psi=0.0), torch.zeros(3, G.num_ws, G.w_dim))
        assert torch.equal(G.mapping.w_avg, w_avg)


def test_stylegan2_construction_draws_are_unchanged():
    """The noise maps are now drawn in reset_parameters, before the weight, where the constructor
    drew them before: the same seed builds the same network (seeded tiny models elsewhere rely on
    it). The layer draws its affine's weight [4, 4], then the noise map, then its weight."""
    from interp_gan.models.stylegan2 import SynthesisLayer
    torch.manual_seed(11)
    layer = SynthesisLayer(4, 4, w_dim=4, resolution=8)
    torch.manual_seed(11)
    affine, noise, weight = torch.randn(4, 4), torch.randn(8, 8), torch.randn(4, 4, 3, 3)
    assert torch.equal(layer.affine.weight, affine / layer.affine.lr_multiplier)
    assert torch.equal(layer.noise_const, noise) and torch.equal(layer.weight, weight)
