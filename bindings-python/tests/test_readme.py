"""Every Python code block of the READMEs (this package's, and the Python part
of the repository's) runs as written, each in a fresh interpreter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

HERE = Path(__file__).resolve().parent.parent
SOURCES = [("bindings-python/README.md", HERE / "README.md"), ("README.md", HERE.parent / "README.md")]


def python_blocks(path: Path) -> List[str]:
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(), flags=re.S | re.M)


BLOCKS: List[Tuple[str, int, str]] = [
    (label, i + 1, code) for label, path in SOURCES for i, code in enumerate(python_blocks(path))
]


def test_the_readmes_have_python_blocks() -> None:
    for label, path in SOURCES:
        assert python_blocks(path), label


@pytest.mark.parametrize("label,index,code", BLOCKS, ids=[f"{b[0]}#{b[1]}" for b in BLOCKS])
def test_block_runs_as_written(label: str, index: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / f"block{index}.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{label} block {index}:\n{result.stdout}{result.stderr}"
