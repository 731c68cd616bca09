"""Config round trips, validation errors and --set overrides."""
import json

import pytest

from interp_gan.config import (AnalysisSpec, DataConfig, ModelConfig, PipelineConfig, Recipe, TrainConfig,
                               apply_overrides, load_pipeline, load_recipe)


def test_recipe_round_trips_through_json():
    r = Recipe(name="x", data=DataConfig(styles=("a", "b"), image_size=32, load_size=40),
               model=ModelConfig(ch=8), train=TrainConfig(steps=7, adv_loss="hinge"))
    again = Recipe.from_dict(json.loads(r.to_json()))
    assert again == r


def test_recipe_toml_and_overrides(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('name = "t"\n[data]\nimage_size = 32\nload_size = 40\n[train]\nsteps = 5\n')
    r = load_recipe(p, ["train.steps=9", "train.adv_loss=lsgan", "model.ch=4"])
    assert (r.train.steps, r.train.adv_loss, r.model.ch, r.data.image_size) == (9, "lsgan", 4, 32)


@pytest.mark.parametrize("bad, match", [
    ({"train": {"adv_loss": "wgan"}}, "adv_loss"),
    ({"train": {"steps": 0}}, "steps"),
    ({"model": {"nope": 1}}, "unknown key"),
    ({"train": {"stepz": 5}}, r"unknown key\(s\) \['stepz'\] for TrainConfig \(did you mean 'steps' for 'stepz'\?\)"),
    ({"data": {"image_size": 64, "load_size": 32}}, "image_size"),
    ({"train": {"steps": "abc"}}, r"TrainConfig.steps = 'abc' \(str\); expected int"),
    ({"train": {"bf16": 1}}, "expected bool"),
    ({"train": {"steps": True}}, "expected int"),
])
def test_invalid_recipes_say_what_is_wrong(bad, match):
    with pytest.raises(ValueError, match=match):
        Recipe.from_dict(bad)


def test_an_int_is_a_valid_float():
    assert Recipe.from_dict({"train": {"lr_g": 1}}).train.lr_g == 1.0


def test_override_needs_key_value():
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["train.steps"])


def test_pipeline_tables_become_specs(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('name = "p"\nn_images = 8\n[analyses.dissection]\nquantile = 0.99\n[analyses.overview]\n')
    cfg = load_pipeline(p)
    assert cfg.analyses == (AnalysisSpec("dissection", {"quantile": 0.99}), AnalysisSpec("overview", {}))
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg
