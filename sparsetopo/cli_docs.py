"""docs/cli.md, generated from the CLI itself: `python -m sparsetopo.cli_docs > docs/cli.md`.

tests/test_api.py fails when the page and the commands disagree.
"""

from __future__ import annotations

import inspect

import typer


def _commands(group, path: list[str]):
    for name, command in group.commands.items():
        if getattr(command, "hidden", False):
            continue
        if hasattr(command, "commands"):
            yield from _commands(command, [*path, name])
        else:
            yield [*path, name], command


def _type_text(param) -> str:
    from enum import Enum

    kind = param.type_descriptor.annotation
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "|".join(str(m.value) for m in kind)
    if getattr(param, "is_flag", False) or kind is bool:
        return "flag"
    if getattr(param, "multiple", False):
        return "text, repeatable"
    name = getattr(kind, "__name__", str(kind)).lower()
    return {"str": "text", "path": "path", "int": "integer", "float": "number"}.get(name, name)


def _usage(argument) -> str:
    text = argument.metavar or argument.name.upper()
    if argument.nargs == -1:
        text += "..."
    return text if argument.required else f"[{text}]"


def _default_text(param) -> str:
    default = param.default
    if default is None or param.required or (getattr(param, "is_flag", False) and default is False):
        return ""
    if isinstance(default, (list, tuple)):
        return ""
    return str(getattr(default, "value", default))


def render() -> str:
    from .cli import app
    from .workspace import COMMANDS

    root = typer.main.get_command(app)
    lines = [
        "# Command line",
        "",
        "Generated from the commands by `python -m sparsetopo.cli_docs > docs/cli.md`; a test fails when",
        "this page and the code disagree. Every command that prints data has `--json`, which prints",
        "exactly what its Python API method returns (docs/api.md): an array for tabular results, an",
        "object otherwise. A run is always the argument RUN, a snapshot always RUN@STEP; a command",
        "writes files only where `--out` (or `--figure`, `--npz-dir`) names them.",
        "",
    ]
    for path, command in _commands(root, []):
        name = " ".join(path)
        usage = " ".join(["[OPTIONS]"] + [_usage(p) for p in command.params if p.param_type_name == "argument"])
        lines += [f"## sparsetopo {name}", "", f"`sparsetopo {name} {usage}`", ""]
        lines += [inspect.cleandoc(command.help or ""), ""]
        if name in COMMANDS:
            lines += [f"Python: `ws.{COMMANDS[name]}(...)`.", ""]
        rows = []
        for param in command.params:
            if param.name == "help":
                continue
            if param.param_type_name == "argument":
                label = f"`{param.metavar or param.name.upper()}`"
            else:
                label = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
            help_text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
            values = _type_text(param).replace("|", " \\| ")
            rows.append(f"| {label} | {values} | {_default_text(param)} | {help_text} |")
        if rows:
            lines += ["| argument / option | values | default | meaning |", "|---|---|---|---|", *rows, ""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
