#!/usr/bin/env python3
"""Writes the error classes into the stubs and the package, from the installed module.

The native module makes one exception class per core error kind from the
core's table of kinds (name, docstring, codes; ``src/errors.rs`` adds the
built-in bases). Type checkers need them spelled out, so these files list
them, between marker lines ``BEGIN GENERATED: <what>`` and
``END GENERATED: <what>``:

- ``_shmsock.pyi``: the classes (``error classes``);
- ``__init__.py`` (typed inline, no stub): their re-export (``error imports``)
  and their entries of
  ``__all__`` (``error names``).

Run after installing the package: ``python tools/gen_error_stubs.py`` rewrites
those lines; ``--check`` only compares them and exits 1 when they are stale
(tests/test_errors.py runs it).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Dict, List

from shmsock import _shmsock

STUB_DIR = Path(__file__).resolve().parent.parent / "python" / "shmsock"


def docstring(text: str, indent: str) -> str:
    """``text`` as a docstring at ``indent``, wrapped at 100 columns."""
    lines = textwrap.wrap(text, width=100 - len(indent) - 3)
    return indent + '"""' + f"\n{indent}".join(lines) + '"""\n'


def render() -> Dict[Path, Dict[str, str]]:
    """The generated lines of each stub file, by marker name."""
    classes: List[str] = []
    for cls in _shmsock._error_classes:
        bases = ", ".join(b.__name__ for b in cls.__bases__)
        text = f"class {cls.__name__}({bases}):\n" + docstring(cls.__doc__ or "", "    ")
        if "needed" in vars(cls):
            # BufferTooSmall: the size the next message needs (set on instances).
            text += '\n    needed: Optional[int]\n    """How many bytes the next message needs."""\n'
        classes.append(text)
    names = sorted(cls.__name__ for cls in _shmsock._error_classes)
    return {
        STUB_DIR / "_shmsock.pyi": {"error classes": "".join(c + "\n" for c in classes)},
        STUB_DIR / "__init__.py": {
            "error imports": "".join(f"    {n} as {n},\n" for n in names),
            "error names": "".join(f'    "{n}",\n' for n in names),
        },
    }


def replace(text: str, what: str, lines: str, path: Path) -> str:
    """``text`` with the lines between the markers of ``what`` replaced."""
    begin = text.find(f"BEGIN GENERATED: {what}")
    end = text.find(f"END GENERATED: {what}", begin)
    if begin < 0 or end < 0:
        sys.exit(f"gen_error_stubs: {path} has no 'BEGIN/END GENERATED: {what}' lines")
    start = text.index("\n", begin) + 1
    stop = text.rindex("\n", 0, end) + 1
    return text[:start] + lines + text[stop:]


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for path, regions in render().items():
        old = path.read_text()
        new = old
        for what, lines in regions.items():
            new = replace(new, what, lines, path)
        if new == old:
            continue
        if check:
            stale.append(path.name)
        else:
            path.write_text(new)
            print(f"gen_error_stubs: wrote {path.name}")
    if stale:
        print(
            f"gen_error_stubs: the error classes in {', '.join(stale)} differ from the module "
            "(the core's table of kinds changed?): run `python tools/gen_error_stubs.py` and commit",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
