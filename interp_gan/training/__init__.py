"""Training (docs/architecture.md, stages ②③): losses, the loop, checkpoints, evaluation classifiers and metrics.

    from interp_gan.training import train, load_checkpoint, evaluate
    ckpt_path = train(load_recipe("training/demo.toml"), Path("runs/demo"))
    ckpt = load_checkpoint(ckpt_path)        # .generator .discriminator .classifiers .meta .sha256
"""
from interp_gan.checkpoint import (LoadedCheckpoint, load_checkpoint, load_trainer_state,
                                            read_metadata, save_checkpoint)
from interp_gan.training.classifiers import train_classifiers
from interp_gan.training.evaluation import evaluate
from interp_gan.training.loop import train
from interp_gan.util import resolve_device

__all__ = ["train", "resolve_device", "save_checkpoint", "load_checkpoint", "read_metadata",
           "LoadedCheckpoint", "load_trainer_state", "evaluate", "train_classifiers"]
