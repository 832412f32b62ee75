"""Command-line options built from the engine's setting declarations.

``hfpose-video`` (and ``hfpose``'s ``--backend``) take their options' names, types, choices,
defaults, validation and help from :func:`hfpose.engine.config.declared_settings`, so a setting
added or changed in the engine reaches the command line without a second declaration.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from hfpose.engine.config import SETTINGS, declared_settings
from hfpose.engine.settings import Setting


def argument_type(spec: Setting) -> Callable[[str], Any]:
    """argparse's ``type`` for a declared setting: converts, then applies its validation."""
    convert = spec.type if spec.type in (int, float) else str

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        problem = spec.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


def add_setting_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per declared setting that has a flag (``declared_settings``), with its
    type, choices, default, validation and help taken from the declaration."""
    for spec in declared_settings():
        flag = spec.cli_flag
        if flag is None:
            continue
        if spec.type is bool:
            action = "store_false" if flag.startswith("--no-") else "store_true"
            off = "off: " if action == "store_false" else ""
            parser.add_argument(flag, dest=spec.name, action=action, help=off + spec.help)
            continue
        help_text = spec.help
        if spec.zero_means:
            help_text += f"; 0: {spec.zero_means}"
        if spec.default is not None:
            help_text += f" (default {spec.default})"
        if spec.choices and not spec.prefix_choice:
            choice = {"choices": spec.choices}
        else:
            choice = {"type": argument_type(spec)}
            if spec.choices:
                help_text = f"{', '.join(spec.choices)}: {help_text}"
        parser.add_argument(
            flag, dest=spec.name, default=spec.default, metavar=spec.metavar, help=help_text,
            **choice,
        )  # fmt: skip
    add_deprecated_device_alias(parser)
    add_replaced_det_interval(parser)


def add_deprecated_device_alias(parser: argparse.ArgumentParser) -> None:
    """``--device``: the option's name before the engine said "backend" everywhere; kept,
    hidden from the help, so the commands in users' scripts and older docs still run."""
    parser.add_argument(
        "--device",
        dest="backend",
        type=argument_type(SETTINGS["backend"]),
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )


def _frames_no_longer(text: str) -> Any:
    raise argparse.ArgumentTypeError(
        "counted frames, and is now --det-interval-s SECONDS, the longest time between "
        "detections (0: every frame; 5 frames of a 30 fps video are 0.17 s)"
    )


def add_replaced_det_interval(parser: argparse.ArgumentParser) -> None:
    """``--det-interval N`` (frames) became ``--det-interval-s`` (seconds): hidden, it says so
    and exits 2, rather than let argparse read it as an abbreviation of the new option and
    take N frames for N seconds."""
    parser.add_argument(
        "--det-interval", type=_frames_no_longer, default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )


def cli_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The declared settings the command line sets, by name."""
    return {s.name: getattr(args, s.name) for s in declared_settings() if s.cli_flag}
