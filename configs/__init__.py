"""The experiment configs: every module here with a `get_config(arg)` is one; the others are
common.py (`parse_arg`, the one parser of a config's `:arg`, and the fields every config has)
and default_<family>.py (a family's `get_default_config()` and smoke size, which each of its
configs changes only where it differs). `describe()` lists the configs with their variants (a
config's VARIANTS) for `launch.main --help`."""
from __future__ import annotations

import ast
import pathlib

HERE = pathlib.Path(__file__).resolve().parent


def config_files() -> list[pathlib.Path]:
    """The config modules (those defining get_config), sorted by name."""
    out = []
    for path in sorted(HERE.glob("*.py")):
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.FunctionDef) and n.name == "get_config" for n in tree.body):
            out.append(path)
    return out


def variants_of(path: pathlib.Path) -> tuple[str, ...]:
    """The module's VARIANTS tuple, read without importing it."""
    for node in ast.parse(path.read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "VARIANTS"):
            return tuple(ast.literal_eval(node.value))
    return ()


def describe() -> str:
    """One line per config: 'configs/NAME.py[:variant,...]  first docstring line'."""
    lines = []
    for path in config_files():
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        variants = variants_of(path)
        name = f"configs/{path.name}" + (f"[:{'|'.join(variants)}]" if variants else "")
        lines.append(f"  {name:<44} {doc.splitlines()[0] if doc else ''}")
    return "\n".join(lines)
