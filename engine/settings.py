"""How a user-facing setting is declared: once, on the engine's configuration dataclass field.

A field made with :func:`setting` carries everything the shells need: its name (the field's,
or ``name=`` for a field of a nested config such as ``SmoothingConfig.min_cutoff``, known to
users as ``one_euro_min_cutoff``), its type (the field's annotation), default, choices, range,
help text and whether a running pipeline takes it live. ``hfpose-video`` builds its flags
from these declarations, the app its stored settings and dialog fields, ``PoseTracker`` its
keyword arguments, and the engine validates with them: nothing restates a default by hand.
:func:`hfpose.engine.config.declared_settings` lists them all.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field
from typing import Any

SETTING = "hfpose.setting"  # the dataclass field metadata key


@dataclass(frozen=True)
class Setting:
    """One setting's declaration (everything but its name, type and default, which the field
    holds; :func:`hfpose.engine.config.declared_settings` fills those in)."""

    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    live: bool = True  # a running Pipeline applies it at the next frame
    zero_means: str = ""  # what 0 stands for ("no limit", "auto"): the CLI and dialog say it
    prefix_choice: bool = False  # "gpu:1", "openvino:GPU": only the part before ":" is a choice
    flag: str = ""  # the CLI option when it is not --name ("--smooth"); "-": not on the CLI
    step: float = 1.0  # the dialog's spin step
    name: str = ""  # the user-facing name when it is not the field's
    type: Any = None
    default: Any = None
    path: tuple[str, ...] = ()  # where it lives in PipelineConfig: ("smoothing", "min_cutoff")

    @property
    def cli_flag(self) -> str | None:
        if self.flag == "-":
            return None
        return self.flag or "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """``value`` if valid, else ValueError naming the setting and what it accepts."""
        if value is None and self.default is None:
            return value
        if self.choices:
            key = str(value).partition(":")[0].lower() if self.prefix_choice else value
            if key not in self.choices:
                raise ValueError(
                    f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}"
                )
        if self.minimum is not None and self.maximum is not None:
            if not self.minimum <= value <= self.maximum:
                raise ValueError(
                    f"{self.name} must be between {self.minimum:g} and {self.maximum:g}, "
                    f"got {value}"
                )
        elif self.minimum is not None and value < self.minimum:
            raise ValueError(f"{self.name} must be >= {self.minimum:g}, got {value}")
        return value


def setting(default: Any, help: str, **declaration: Any) -> Any:  # noqa: A002 - argparse's word
    """A dataclass field that is a user-facing setting (see :class:`Setting` for the keywords)."""
    return field(default=default, metadata={SETTING: Setting(help=help, **declaration)})


def declaration_of(f: Field) -> Setting | None:
    return f.metadata.get(SETTING)
