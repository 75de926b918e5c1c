#!/usr/bin/env python3
"""Fails when the type stubs and the installed module differ.

Imports ``shmsock`` and ``shmsock._shmsock`` and compares them with
``python/shmsock/__init__.pyi`` and ``python/shmsock/_shmsock.pyi``:

- the same public names at module level and in each class (names starting
  with one underscore count too; dunders only where listed below);
- classes are classes, functions functions, properties properties, static
  methods static methods;
- the same base classes for every class;
- the same parameters (names, kinds and defaults) wherever the runtime object
  has an introspectable signature (``__text_signature__`` for native code);
- a docstring on every public name, in the stubs and at run time.

Run after installing the package: ``python tools/check_stubs.py``.
Exit status 0 when they agree, 1 with a list of differences otherwise.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

STUB_DIR = Path(__file__).resolve().parent.parent / "python" / "shmsock"

# Names that exist only in the stubs (type aliases for annotations).
STUB_ONLY = {"shmsock._shmsock": {"_KeyLike"}, "shmsock": {"KeyLike"}}
# Runtime names that need no stub entry.
RUNTIME_ONLY: Dict[str, set] = {"shmsock": set(), "shmsock._shmsock": set()}
# Dunder methods whose presence is compared (others are Python's machinery).
DUNDERS = {"__enter__", "__exit__", "__iter__", "__next__", "__bytes__", "__aenter__", "__aexit__"}

problems: List[str] = []


def report(msg: str) -> None:
    problems.append(msg)


def interesting(name: str) -> bool:
    if name.startswith("__") and name.endswith("__"):
        return name in DUNDERS
    return True


# ------------------------------------------------------------------ stub side


class StubFunc:
    def __init__(self, node: ast.FunctionDef, decorators: List[str]) -> None:
        self.node = node
        self.decorators = decorators
        self.doc = ast.get_docstring(node)

    @property
    def kind(self) -> str:
        if "property" in self.decorators:
            return "property"
        if "staticmethod" in self.decorators:
            return "staticmethod"
        if "classmethod" in self.decorators:
            return "classmethod"
        return "function"

    def params(self, drop_first: bool) -> List[Tuple[str, str, Optional[str]]]:
        """(name, kind, default source) for each parameter."""
        a = self.node.args
        out: List[Tuple[str, str, Optional[str]]] = []
        positional = a.posonlyargs + a.args
        defaults: List[Optional[ast.expr]] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
        for i, arg in enumerate(positional):
            kind = "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
            d = defaults[i]
            out.append((arg.arg, kind, None if d is None else ast.unparse(d)))
        if a.vararg:
            out.append((a.vararg.arg, "VAR_POSITIONAL", None))
        for arg, d in zip(a.kwonlyargs, a.kw_defaults):
            out.append((arg.arg, "KEYWORD_ONLY", None if d is None else ast.unparse(d)))
        if a.kwarg:
            out.append((a.kwarg.arg, "VAR_KEYWORD", None))
        if drop_first and out:
            out = out[1:]
        return out


class StubClass:
    def __init__(self, node: ast.ClassDef) -> None:
        self.node = node
        self.doc = ast.get_docstring(node)
        self.bases = [ast.unparse(b) for b in node.bases]
        self.members: Dict[str, Any] = {}
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                decorators = [ast.unparse(d) for d in item.decorator_list]
                self.members[item.name] = StubFunc(item, decorators)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                self.members[item.target.id] = "attribute"


def parse_stub(path: Path) -> Dict[str, Any]:
    tree = ast.parse(path.read_text(), str(path))
    names: Dict[str, Any] = {}
    body = tree.body
    for i, item in enumerate(body):
        if isinstance(item, ast.ClassDef):
            names[item.name] = StubClass(item)
        elif isinstance(item, ast.FunctionDef):
            names[item.name] = StubFunc(item, [ast.unparse(d) for d in item.decorator_list])
        elif isinstance(item, ast.ImportFrom) and item.level == 1:
            for alias in item.names:
                if alias.asname == alias.name:  # explicit re-export
                    names[alias.name] = ("reexport", item.module, alias.name)
        elif isinstance(item, (ast.AnnAssign, ast.Assign)):
            target = item.target if isinstance(item, ast.AnnAssign) else item.targets[0]
            if isinstance(target, ast.Name):
                nxt = body[i + 1] if i + 1 < len(body) else None
                has_doc = (
                    isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)
                )
                names[target.id] = ("variable", has_doc)
    return names


# --------------------------------------------------------------- runtime side


def runtime_params(obj: Any, drop_first: bool) -> Optional[List[Tuple[str, str, Optional[str]]]]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    out = []
    for p in sig.parameters.values():
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        if default == "Ellipsis":
            default = "..."
        out.append((p.name, p.kind.name, default))
    if drop_first and out and out[0][0] in ("self", "cls"):
        out = out[1:]
    return out


def runtime_kind(cls: type, name: str) -> str:
    raw = inspect.getattr_static(cls, name)
    if isinstance(raw, staticmethod):
        return "staticmethod"
    if isinstance(raw, classmethod):
        return "classmethod"
    if isinstance(raw, property) or type(raw).__name__ in ("getset_descriptor", "member_descriptor"):
        return "property"
    if type(raw).__name__ == "builtin_function_or_method":
        # pyo3 #[staticmethod] shows up as a builtin bound to the type.
        return "staticmethod"
    return "function"


def compare_params(where: str, stub: List[Tuple[str, str, Optional[str]]], rt: List[Tuple[str, str, Optional[str]]]) -> None:
    if [(n, k) for n, k, _ in stub] != [(n, k) for n, k, _ in rt]:
        report(f"{where}: parameters differ:\n    stub:    {stub}\n    runtime: {rt}")
        return
    for (n, _, sd), (_, _, rd) in zip(stub, rt):
        if (sd is None) != (rd is None):
            report(f"{where}: parameter {n!r} has a default in only one of stub ({sd}) and runtime ({rd})")
        elif sd is not None and rd is not None and sd != "..." and sd != rd:
            report(f"{where}: parameter {n!r} default differs: stub {sd}, runtime {rd}")
        elif sd == "..." and rd not in ("...",) and rd is not None:
            # "..." in a stub stands for a sentinel; a plain default must be spelled out.
            report(f"{where}: parameter {n!r}: stub says '...' but the runtime default is {rd}")


def inherited_stub_names(stub: StubClass, all_stubs: Dict[str, Any]) -> set:
    """Members the stub declares on its base classes (in the same stub file):
    a subclass may override them at run time (e.g. each error's ``code``)."""
    names: set = set()
    for base in stub.bases:
        parent = all_stubs.get(base.split(".")[-1])
        if isinstance(parent, StubClass):
            names |= set(parent.members) | inherited_stub_names(parent, all_stubs)
    return names


def check_class(modname: str, name: str, stub: StubClass, cls: type, all_stubs: Dict[str, Any]) -> None:
    where = f"{modname}.{name}"
    if not isinstance(cls, type):
        report(f"{where}: stub declares a class, runtime has {type(cls).__name__}")
        return
    if not stub.doc:
        report(f"{where}: stub class has no docstring")
    if not (cls.__doc__ or "").strip():
        report(f"{where}: runtime class has no docstring")
    rt_bases = [b.__name__ for b in cls.__bases__ if b is not object]
    st_bases = [b.split(".")[-1] for b in stub.bases]
    if rt_bases != st_bases:
        report(f"{where}: bases differ: stub {st_bases}, runtime {rt_bases}")
    is_exception = issubclass(cls, BaseException)
    rt_names = {n for n in vars(cls) if interesting(n)}
    if is_exception:
        rt_names = {n for n in rt_names if n not in ("__weakref__",)}
    st_names = {n for n in stub.members if interesting(n)} - {"__init__", "__new__", "__eq__", "__hash__"}
    # Overrides of what a base class declares need no entry of their own.
    rt_names -= inherited_stub_names(stub, all_stubs) - set(stub.members)
    for missing in sorted(rt_names - st_names):
        report(f"{where}.{missing}: exists at run time but not in the stub")
    for extra in sorted(st_names - rt_names):
        report(f"{where}.{extra}: in the stub but not at run time")
    for member in sorted(st_names & rt_names):
        s = stub.members[member]
        mwhere = f"{where}.{member}"
        if s == "attribute":
            continue
        assert isinstance(s, StubFunc)
        if not s.doc:
            report(f"{mwhere}: stub has no docstring")
        rk = runtime_kind(cls, member)
        if s.kind != rk:
            report(f"{mwhere}: stub says {s.kind}, runtime has {rk}")
            continue
        raw = getattr(cls, member)
        if not member.startswith("__") and not (getattr(raw, "__doc__", None) or "").strip():
            report(f"{mwhere}: runtime has no docstring")
        if rk == "property" or member.startswith("__"):
            continue
        rt = runtime_params(raw, drop_first=rk not in ("staticmethod",))
        if rt is not None:
            compare_params(mwhere, s.params(drop_first=s.kind not in ("staticmethod",)), rt)
    # The constructor.
    init = stub.members.get("__init__")
    if isinstance(init, StubFunc) and not is_exception:
        rt = runtime_params(cls, drop_first=False)
        if rt is not None:
            compare_params(f"{where}(...)", init.params(drop_first=True), rt)
        if not init.doc:
            report(f"{where}.__init__: stub has no docstring")


def check_module(modname: str, stub_path: Path) -> None:
    mod = importlib.import_module(modname)
    stub = parse_stub(stub_path)
    rt_names = {n for n in vars(mod) if not (n.startswith("__") and n.endswith("__"))} | (
        {"__version__"} if hasattr(mod, "__version__") else set()
    )
    if modname == "shmsock":
        # Only what the package exports (not the modules it imports).
        rt_names = set(getattr(mod, "__all__"))
    rt_names -= RUNTIME_ONLY.get(modname, set())
    st_names = set(stub) - {"__all__"}
    for missing in sorted(rt_names - st_names):
        report(f"{modname}.{missing}: exists at run time but not in {stub_path.name}")
    for extra in sorted(st_names - rt_names - STUB_ONLY.get(modname, set())):
        report(f"{modname}.{extra}: in {stub_path.name} but not at run time")
    if modname == "shmsock":
        stub_all = None
        for node in ast.parse(stub_path.read_text()).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "__all__":
                stub_all = ast.literal_eval(node.value)
        if stub_all is None or sorted(stub_all) != sorted(getattr(mod, "__all__")):
            report(f"{modname}.__all__ differs between {stub_path.name} and the runtime")
    for name in sorted(st_names & rt_names):
        s = stub[name]
        obj = getattr(mod, name)
        where = f"{modname}.{name}"
        if isinstance(s, StubClass):
            check_class(modname, name, s, obj, stub)
        elif isinstance(s, StubFunc):
            if not s.doc:
                report(f"{where}: stub has no docstring")
            if not callable(obj) or isinstance(obj, type):
                report(f"{where}: stub declares a function, runtime has {type(obj).__name__}")
                continue
            if not (obj.__doc__ or "").strip():
                report(f"{where}: runtime has no docstring")
            rt = runtime_params(obj, drop_first=False)
            if rt is not None:
                compare_params(where, s.params(drop_first=False), rt)
        elif isinstance(s, tuple) and s[0] == "reexport":
            _, module, orig = s
            source = importlib.import_module(f"shmsock.{module}")
            if getattr(source, orig, None) is not obj:
                report(f"{where}: the stub re-exports {module}.{orig}, the runtime has another object")
        elif isinstance(s, tuple) and s[0] == "variable":
            if not s[1] and not name.startswith("_") and name != "__version__":
                report(f"{where}: stub variable has no docstring")


def main() -> int:
    check_module("shmsock._shmsock", STUB_DIR / "_shmsock.pyi")
    check_module("shmsock", STUB_DIR / "__init__.pyi")
    if problems:
        print(f"check_stubs: {len(problems)} difference(s) between the stubs and the module:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print("check_stubs: stubs match the runtime module (shmsock, shmsock._shmsock)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
