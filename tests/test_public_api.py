"""The flat public API: every name resolves, and importing the package loads no torch."""
import subprocess
import sys

import interp_gan


def test_every_exported_name_resolves():
    for name in interp_gan.__all__:
        assert getattr(interp_gan, name) is not None, name


def test_import_is_light():
    code = "import sys, interp_gan, interp_gan.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
