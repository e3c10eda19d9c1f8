"""Global options anywhere: ``forecast ingest X --warehouse W`` means ``forecast --warehouse W ingest X``.

Click reads a group's options only before its subcommand, so a global option written after the
command (as people type it, and as the README's examples once did) failed with "No such option".
:class:`GlobalOptionsGroup` moves the app's own options found after the command path to the front
before parsing, unless the command itself has an option of that name (``serve --warehouse`` is
the service's flag, not the global path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from typer.core import TyperGroup

# Typer may bring its own copy of Click, so parameters and groups are recognised by shape, not class.


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _takes_value(param: Any) -> bool:
    return _is_option(param) and not getattr(param, "is_flag", False) and not getattr(param, "count", False)


def _option_names(command: Any) -> set[str]:
    return {
        name
        for p in getattr(command, "params", [])
        if _is_option(p)
        for name in (*p.opts, *getattr(p, "secondary_opts", []))
    }


def _subcommands(command: Any) -> dict[str, Any]:
    found = getattr(command, "commands", None)
    return found if isinstance(found, dict) else {}


def move_global_options(group: Any, args: Sequence[str]) -> list[str]:
    """``args`` with ``group``'s own options that follow the command path moved to the front.

    Args:
        group: The top-level group (its options are the global ones).
        args: The command line after the program name.

    Returns:
        The reordered arguments (unchanged when nothing needs to move).
    """
    args = list(args)
    globals_ = {name: _takes_value(p) for p in group.params if _is_option(p) for name in p.opts}
    # skip the global options already in front, then follow the command path to the leaf command
    i, command = 0, group
    while i < len(args):
        token = args[i]
        name = token.split("=", 1)[0]
        if command is group and name in globals_:
            i += 1 if "=" in token or not globals_[name] else 2
            continue
        if token in _subcommands(command):
            command = _subcommands(command)[token]
            i += 1
            continue
        break
    if command is group:
        return args
    own = _option_names(command)
    front: list[str] = []
    rest, j = args[:i], i
    while j < len(args):
        token = args[j]
        if token == "--":
            rest.extend(args[j:])
            break
        name = token.split("=", 1)[0]
        if name in globals_ and name not in own:
            width = 1 if "=" in token or not globals_[name] else 2
            front.extend(args[j : j + width])
            j += width
            continue
        rest.append(token)
        j += 1
    return front + rest


class GlobalOptionsGroup(TyperGroup):
    """The app's group: global options are accepted before or after the command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Move trailing global options to the front, then parse as usual."""
        return super().parse_args(ctx, move_global_options(self, args))
