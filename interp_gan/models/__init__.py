"""Pure nn.Modules and a name registry (docs/architecture.md)."""
from interp_gan.models.adain import AdaINNet
from interp_gan.models.animegan import AnimeGANv2Generator
from interp_gan.models.cartoongan import CartoonGANGenerator
from interp_gan.models.classifier import StyleClassifier, texture_view
from interp_gan.models.cyclegan import CycleGANGenerator
from interp_gan.models.discriminator import StyleDiscriminator
from interp_gan.models.fast_neural_style import FastNeuralStyleNet
from interp_gan.models.munit import MUNITTranslator
from interp_gan.models.features import (FeatureNetUnavailable, RandomFeatureNet, VGGFeatureNet, build_feature_net,
                                       gram, gram_distance, high_pass)
from interp_gan.models.resnet_generator import ResnetGenerator
from interp_gan.models.registry import build_model, list_models, register_model
from interp_gan.models.stargan import StarGANGenerator
from interp_gan.models.stargan_v2 import StarGANv2
from interp_gan.models.stylegan2 import StyleGAN2Generator
from interp_gan.models.stylegan2_discriminator import StyleGAN2Discriminator
from interp_gan.models.stylegan3 import StyleGAN3Generator
from interp_gan.models.stylenet import AdaIN, StyleNet
from interp_gan.models.ugatit import UGATITGenerator
from interp_gan.models.unet_generator import UnetGenerator

__all__ = ["StyleNet", "CycleGANGenerator", "StarGANGenerator", "AdaIN", "StyleDiscriminator", "StyleClassifier",
           "StarGANv2", "ResnetGenerator", "UnetGenerator", "FastNeuralStyleNet", "StyleGAN2Generator", "StyleGAN2Discriminator", "StyleGAN3Generator",
           "texture_view",
           "RandomFeatureNet", "VGGFeatureNet", "build_feature_net", "FeatureNetUnavailable", "gram", "gram_distance", "high_pass",
           "build_model", "list_models", "register_model", "AnimeGANv2Generator", "UGATITGenerator",
           "MUNITTranslator", "AdaINNet", "CartoonGANGenerator"]
