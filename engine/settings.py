"""How a user-facing setting is declared: once, on the engine's configuration dataclass field.

A field made with :func:`setting` carries everything the shells need: its name (the field's,
or ``name=`` for a field of a nested config such as ``SmoothingConfig.min_cutoff``, known to
users as ``one_euro_min_cutoff``), its type (the field's annotation), default, choices, range,
help text and the pipeline stages a live change of it reaches. ``hfpose-video`` builds its flags
from these declarations, the app its stored settings and dialog fields, ``PoseTracker`` its
keyword arguments, and the engine validates with them: nothing restates a default by hand.
:func:`hfpose.engine.config.declared_settings` lists them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from functools import cache
from typing import Any, get_type_hints

SETTING = "hfpose.setting"  # the dataclass field metadata key


@dataclass(frozen=True)
class Setting:
    """One setting's declaration (everything but its name, type and default, which the field
    holds; :func:`hfpose.engine.config.declared_settings` fills those in)."""

    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    # the pipeline stages (hfpose.engine.processor.STAGES) a change reaches, each at its next
    # frame; a nested config's fields reach its stage (hfpose.engine.config.NESTED)
    stages: tuple[str, ...] = ()
    zero_means: str = ""  # what 0 stands for ("no limit", "auto"): the CLI and dialog say it
    prefix_choice: bool = False  # "gpu:1", "openvino:GPU": only the part before ":" is a choice
    flag: str = ""  # the CLI option when it is not --name ("--smooth"); "-": not on the CLI
    metavar: str | None = None  # the CLI's placeholder for the value
    ui_range: tuple[float, float] | None = None  # the dialog's range where none is enforced
    step: float = 1.0  # the dialog's spin step
    decimals: int = 0  # the dialog's decimals for a float
    name: str = ""  # the user-facing name when it is not the field's
    type: Any = None
    default: Any = None
    path: tuple[str, ...] = ()  # where it lives in PipelineConfig: ("smoothing", "min_cutoff")

    @property
    def cli_flag(self) -> str | None:
        if self.flag == "-":
            return None
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def dialog_range(self) -> tuple[float, float]:
        """The dialog's spin box range: the declared one, else the enforced bounds."""
        if self.ui_range is not None:
            return self.ui_range
        return (self.minimum or 0.0, self.maximum if self.maximum is not None else 1e9)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not accepted (None when it is)."""
        if value is None and self.default is None:
            return None
        if self.choices:
            key = str(value).partition(":")[0].lower() if self.prefix_choice else value
            if key not in self.choices:
                return f"unknown {self.name} {value!r}; choose one of {', '.join(self.choices)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        if self.minimum is not None and self.maximum is not None:
            if not self.minimum <= value <= self.maximum:
                return f"must be between {self.minimum:g} and {self.maximum:g}, got {value}"
        elif self.minimum is not None and value < self.minimum:
            return f"must be {self.minimum:g} or more, got {value}"
        return None

    def check(self, value: Any) -> Any:
        """``value`` if valid, else ValueError naming the setting and what it accepts."""
        problem = self.problem(value)
        if problem is not None:
            raise ValueError(problem if problem.startswith("unknown") else f"{self.name} {problem}")
        return value


def setting(default: Any, help: str, **declaration: Any) -> Any:  # noqa: A002 - argparse's word
    """A dataclass field that is a user-facing setting (see :class:`Setting` for the keywords)."""
    return field(default=default, metadata={SETTING: Setting(help=help, **declaration)})


@cache
def declared_fields(config_type: type) -> tuple[Setting, ...]:
    """The settings declared on a dataclass's own fields, names, types and defaults filled in
    (worked out once per class: every construction validates with them)."""
    hints = get_type_hints(config_type)
    found = []
    for f in fields(config_type):
        spec = f.metadata.get(SETTING)
        if spec is not None:
            name = spec.name or f.name
            found.append(
                replace(spec, name=name, type=hints[f.name], default=f.default, path=(f.name,))
            )
    return tuple(found)


def check_declared(config: Any) -> None:
    """Validate every declared field of a dataclass instance (its ``__post_init__`` calls it)."""
    for spec in declared_fields(type(config)):
        spec.check(getattr(config, spec.path[0]))
