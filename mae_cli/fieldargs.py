"""argparse flags derived from ``mae_core`` FieldSpecs: one flag per field, with the spec's type,
bounds and help, so the CLI and the server apply the same rule in the same words."""

from __future__ import annotations

import argparse

from mae_core.fields import FieldSpec


def field_type(spec: FieldSpec):
    """An argparse ``type=`` that parses a value and applies ``spec``'s rule: the same
    bounds and message as the server's (e.g. ``--ratio 0`` is refused, as POST /reconstruct does)."""
    def parse(text: str):
        try:
            value = spec.type(text)
        except ValueError:
            kind = "an integer" if spec.type is int else "a number"
            raise argparse.ArgumentTypeError(f"{spec.name} must be {kind}, got {text!r}") from None
        problem = spec.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value
    parse.__name__ = spec.name  # argparse names the type in its messages
    return parse


def flag(spec: FieldSpec) -> str:
    return "--" + spec.name.replace("_", "-")


def add_field_argument(parser: argparse.ArgumentParser, spec: FieldSpec, *aliases: str) -> None:
    """``--<name>`` for ``spec`` (default None: the recipe's value); booleans are not handled here."""
    bounds = "" if spec.type is str and not spec.choices else f"; {spec.bounds_text()}"
    unit = f" ({spec.unit})" if spec.unit and spec.unit not in spec.help else ""
    kwargs = {"type": field_type(spec)} if spec.type in (int, float) or spec.choices or spec.pattern \
        else {}
    parser.add_argument(flag(spec), *aliases, dest=spec.name, default=None,
                        help=f"{spec.help}{unit}{bounds}".replace("%", "%%"), **kwargs)
