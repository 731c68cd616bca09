"""Subjects (stage ④ of docs/architecture.md): any generator behind one small protocol, and the
loaders that turn a file (our checkpoint, a CycleGAN / StarGAN state dict, a factory) into one.

    from interp_gan.subject import Subject, load_subject
"""
from interp_gan.subject.loading import convert_checkpoint, convert_cyclegan, load_subject
from interp_gan.subject.protocol import Subject

__all__ = ["Subject", "load_subject", "convert_checkpoint", "convert_cyclegan"]
