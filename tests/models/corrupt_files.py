"""A corrupted model file is refused in one line: the promise every family's loader keeps, checked one way.

Each family's test file builds its own corrupted files (a tensor gone, one too many, one of the wrong
shape) and calls ``assert_refused_in_one_line``; ``corrupted`` makes the plain edits.

    CORRUPT = {"missing": ("model.8.weight", None), "extra": ("model.9.weight", torch.zeros(4, 4, 3, 3))}
    sd, key = corrupted(reference_state_dict(), *CORRUPT[kind])          # deleted (None) or set
    nets, key = corrupted(nets, "mlp.fc.weight", torch.zeros(60, 8), at=("a",))   # inside nets["a"]
    assert_refused_in_one_line(_save(sd, tmp_path / "bad.pt"), key, capsys, says=("U-Net", REASON[kind]))
"""
from __future__ import annotations

import pytest

from interp_gan.subject.loading import load_subject

REASON = {"missing": "missing", "extra": "could not place", "wrong_shape": "wrong shape"}
KINDS = list(REASON)


def corrupted(obj: dict, key: str, value=None, at: tuple[str, ...] = ()) -> tuple[dict, str]:
    """(``obj`` with ``key`` deleted (``value`` None) or set to ``value`` in ``obj[at[0]][at[1]]...``, ``key``)."""
    d = obj
    for name in at:
        d = d[name]
    if value is None:
        del d[key]
    else:
        d[key] = value
    return obj, key


def assert_refused_in_one_line(path, key: str, capsys, says=(), not_says=(), size: int = 32) -> None:
    """``load_subject(path)`` raises a one-line ``ValueError`` naming ``key``, the ``--model file.py:factory``
    way out and each of ``says`` (none of ``not_says``); ``interp-gan inspect path`` exits 2 with that line
    on stderr and no traceback."""
    from interp_gan.cli import main

    with pytest.raises(ValueError) as e:
        load_subject(path, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and key in msg and "--model file.py:factory" in msg, msg
    assert all(s in msg for s in says) and not any(s in msg for s in not_says), msg
    capsys.readouterr()
    assert main(["inspect", str(path), "--size", str(size)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err and "Traceback" not in err, err
    assert all(s in err for s in says) and not any(s in err for s in not_says), err
