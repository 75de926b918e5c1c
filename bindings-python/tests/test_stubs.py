"""The committed stubs match the installed module (tools/check_stubs.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def test_stubs_match_the_module() -> None:
    result = subprocess.run(
        [sys.executable, str(TOOLS / "check_stubs.py")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_version_is_the_workspace_version() -> None:
    import re

    import shmsock

    cargo = (Path(__file__).resolve().parents[2] / "Cargo.toml").read_text()
    match = re.search(r'\[workspace\.package\][^\[]*?version\s*=\s*"([^"]+)"', cargo, re.S)
    assert match, "no [workspace.package] version in the root Cargo.toml"
    assert shmsock.__version__ == match.group(1)
    from importlib.metadata import version

    assert version("shmsock") == shmsock.__version__
