"""Field specifications: a user-settable value's name, type, bounds, default, unit and help, once.

Everything that accepts such a value derives from its ``FieldSpec``: the library's checks, the
CLI flags, the HTTP request models, the forms' limits. The fields shared by reconstruction and
training (the masking ratio and the seed) are defined here; the training fields build on the same
class.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidParameterError


@dataclass(frozen=True)
class FieldSpec:
    """One user-settable value.

    Attributes:
        name: the field's name in configs, requests and (with dashes) CLI flags.
        type: ``int``, ``float``, ``bool`` or ``str``.
        help: one line a user can act on; may state the formula or the paper's value.
        default: the value when nothing is given (None: no default, or derived elsewhere).
        minimum, maximum: inclusive bounds, or None.
        exclusive_minimum, exclusive_maximum: the bound itself is not allowed.
        choices: the allowed values of a ``str`` field.
        unit: what the number counts ("epochs", "images", "px"), for help texts and forms.
        path: where the value lives in a ``TrainConfig`` (``"optim.blr"``; ``"model_overrides.depth"``);
            empty for fields that are not config values (a dataset name, a checkpoint id).
        step: the granularity a form offers (None: 1 for integers, any for floats).
        max_length: the longest ``str`` accepted.
        pattern: a regular expression a ``str`` must match in full (e.g. device names).
    """

    name: str
    type: type
    help: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    choices: tuple[str, ...] | None = None
    unit: str = ""
    path: str = ""
    step: float | None = None
    max_length: int | None = None
    pattern: str | None = None

    def bounds_text(self) -> str:
        """The allowed range as a user reads it: ``in (0, 1)``, ``>= 1``, ``one of a, b``."""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            left = "(" if self.exclusive_minimum else "["
            right = ")" if self.exclusive_maximum else "]"
            return f"in {left}{_num(lo)}, {_num(hi)}{right}"
        if lo is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {_num(lo)}"
        if hi is not None:
            return f"{'<' if self.exclusive_maximum else '<='} {_num(hi)}"
        return "any value"

    def check(self, value: Any) -> Any:
        """``value`` if it is of this field's type and within its bounds, else InvalidParameterError
        naming the field and what to send. Booleans are never numbers; ints are accepted as floats."""
        problem = self.problem(value)
        if problem:
            raise InvalidParameterError(problem)
        return float(value) if self.type is float else value

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (None when it is acceptable)."""
        wanted = f"{self.name} must be {self._kind()} {self.bounds_text()}"
        if self.type is bool:
            return None if isinstance(value, bool) else f"{self.name} must be true or false, got {value!r}"
        if isinstance(value, bool):
            return f"{wanted}, got {value!r}"
        if self.type is str:
            if not isinstance(value, str) or (self.choices is not None and value not in self.choices):
                return f"{wanted}, got {value!r}"
            if self.max_length is not None and len(value) > self.max_length:
                return f"{self.name} must be at most {self.max_length} characters, got {len(value)}"
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                return f"{self.name} {value!r} is not {self.help}"
            return None
        if self.type is int and not isinstance(value, int):
            return f"{wanted}, got {value!r}"
        if self.type is float and (not isinstance(value, (int, float)) or not math.isfinite(value)):
            return f"{wanted} (a finite number), got {value!r}"
        if self.minimum is not None and (value < self.minimum or
                                         (self.exclusive_minimum and value == self.minimum)):
            return f"{wanted}, got {value!r}"
        if self.maximum is not None and (value > self.maximum or
                                         (self.exclusive_maximum and value == self.maximum)):
            return f"{wanted}, got {value!r}"
        return None

    def limits(self) -> dict[str, Any]:
        """JSON-ready bounds, default, step, unit and help for a form (the page-config)."""
        data = {"type": self.type.__name__, "default": self.default, "min": self.minimum,
                "max": self.maximum, "exclusiveMin": self.exclusive_minimum,
                "exclusiveMax": self.exclusive_maximum, "unit": self.unit, "help": self.help,
                "step": self.step if self.step is not None else (1 if self.type is int else "any")}
        if self.choices is not None:
            data["choices"] = list(self.choices)
        return data

    def _kind(self) -> str:
        return {int: "an integer", float: "a number", str: "a string"}.get(self.type, "a value")


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


# The fields a reconstruction and a training run share.
MASK_RATIO = FieldSpec(
    "mask_ratio", float, "fraction of patches removed (the paper: 0.75); each sample keeps "
    "int(L * (1 - ratio)) of its L patches", default=0.75, minimum=0.0, maximum=1.0,
    exclusive_minimum=True, exclusive_maximum=True)
SEED = FieldSpec(
    "seed", int, "random seed (masks are drawn on the CPU, so a seed gives the same mask on any "
    "device)", default=0, minimum=0, maximum=2**63 - 1)
