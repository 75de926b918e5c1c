"""The committed stubs match the installed module (``python -m mypy.stubtest
shmsock``), and the package's namespace holds only its API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_stubs_match_the_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "shmsock"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dir_shows_only_the_api() -> None:
    import shmsock

    public = {n for n in dir(shmsock) if not n.startswith("_")}
    # `aio` is there once imported (it is a submodule, imported by the tests).
    assert public - {"aio"} == set(shmsock.__all__) - {"__version__"}, public ^ set(shmsock.__all__)


def test_version_is_the_workspace_version() -> None:
    import re

    import shmsock

    cargo = (Path(__file__).resolve().parents[2] / "Cargo.toml").read_text()
    match = re.search(r'\[workspace\.package\][^\[]*?version\s*=\s*"([^"]+)"', cargo, re.S)
    assert match, "no [workspace.package] version in the root Cargo.toml"
    assert shmsock.__version__ == match.group(1)
    from importlib.metadata import version

    assert version("shmsock") == shmsock.__version__
