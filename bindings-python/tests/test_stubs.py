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


def test_final_in_the_stubs_is_what_cannot_be_subclassed() -> None:
    """A native class is ``@final`` in ``_shmsock.pyi`` exactly when Python
    refuses to subclass it."""
    import ast

    import shmsock
    from shmsock import _shmsock

    stub = Path(shmsock.__file__).with_name("_shmsock.pyi")
    tree = ast.parse(stub.read_text())
    checked = 0
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        final = any(isinstance(d, ast.Name) and d.id == "final" for d in node.decorator_list)
        cls = getattr(_shmsock, node.name)
        try:
            type("Sub", (cls,), {})
            subclassable = True
        except TypeError:
            subclassable = False
        assert final == (not subclassable), f"{node.name}: @final is {final}, subclassable is {subclassable}"
        checked += 1
    assert checked > 20
