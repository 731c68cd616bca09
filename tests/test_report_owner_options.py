"""One file loaded with other options is another subject: a report folder of MUNIT's a -> b refuses a
b -> a run of the same file (and the same for a StyleGAN2's space, AnimeGAN's upsampling, ...)."""
from __future__ import annotations

import json

import pytest

from interp_gan.guards import check_report_owner, subject_config

MODEL = {"name": "munit", "dim": 4, "direction": "a2b"}


def _folder(tmp_path, **manifest):
    (tmp_path / "manifest.json").write_text(json.dumps({"checkpoint_sha256": "abc", "data_fingerprint": "d",
                                                        **manifest}))
    return tmp_path


def test_the_same_file_with_another_direction_is_refused_in_one_line_naming_it(tmp_path):
    out = _folder(tmp_path, subject_config=subject_config({"model": MODEL, "checkpoint_path": "/x/gen.pt"}))
    check_report_owner(out, "abc", "d", {"model": dict(MODEL), "checkpoint_path": "/y/moved.pt"})   # same subject
    with pytest.raises(ValueError) as e:
        check_report_owner(out, "abc", "d", {"model": {**MODEL, "direction": "b2a"}})
    msg = str(e.value)
    assert "\n" not in msg and "model.direction: \"a2b\" there, \"b2a\" now" in msg and "another subject" in msg


def test_stylegan_space_and_truncation_count_and_old_manifests_are_judged_by_the_file(tmp_path):
    meta = {"model": {"name": "stylegan2"}, "style_space": "w", "truncation_psi": 1.0}
    out = _folder(tmp_path, subject_config=subject_config(meta))
    with pytest.raises(ValueError, match=r"style_space: \"w\" there, \"s\" now"):
        check_report_owner(out, "abc", "d", {**meta, "style_space": "s"})
    with pytest.raises(ValueError, match=r"truncation_psi: 1.0 there, 0.7 now"):
        check_report_owner(out, "abc", "d", {**meta, "truncation_psi": 0.7})
    old = _folder(tmp_path / "old") if (tmp_path / "old").mkdir() is None else None
    check_report_owner(old, "abc", "d", {**meta, "style_space": "s"})    # no subject_config recorded: file only
