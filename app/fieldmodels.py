"""Pydantic request models derived from ``mae_core`` FieldSpecs, so a field's type, bounds, default
and help are written once (in the spec) and the HTTP layer only translates them."""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from mae_core.fields import FieldSpec

_STRICT = ConfigDict(extra="forbid", strict=True, protected_namespaces=())


def field_definition(spec: FieldSpec, required: bool = False, example: Any = None) -> tuple[Any, Any]:
    """``(annotation, FieldInfo)`` for ``spec``: strict type (no bool as a number, no "5" as 5),
    finite numbers only, the spec's bounds; optional (None = the recipe's value) unless required.

    The JSON schema also shows the spec's choices (``enum``) and default. Both are documentation
    only: the spec's own check (``FieldSpec.problem``) refuses other choices, in its words, and
    the model keeps None for "not given" so the recipe or protocol fills it in."""
    value_type: Any = spec.type
    if spec.choices is not None:
        value_type = Annotated[spec.type, Field(json_schema_extra={"enum": list(spec.choices)})]
    documented = {"default": spec.default} if spec.default is not None else None
    limits: dict[str, Any] = {}
    if spec.type in (int, float):
        lo, hi = spec.minimum, spec.maximum
        if lo is not None:
            limits["gt" if spec.exclusive_minimum else "ge"] = lo
        if hi is not None:
            limits["lt" if spec.exclusive_maximum else "le"] = hi
        if spec.type is float:
            limits["allow_inf_nan"] = False
    if spec.type is str:
        limits["max_length"] = spec.max_length
        if spec.pattern:
            limits["pattern"] = f"^(?:{spec.pattern})$"
        if required:
            limits["min_length"] = 1
    description = spec.help + (f" ({spec.unit})" if spec.unit else "")
    examples = [example] if example is not None else None
    if required:
        return value_type, Field(..., description=description, examples=examples, **limits)
    return value_type | None, Field(None, description=description, examples=examples,
                                    json_schema_extra=documented, **limits)


def model_from_fields(name: str, specs: Iterable[FieldSpec], required: Iterable[str] = (),
                      examples: dict[str, Any] | None = None, doc: str = "",
                      kind: str | None = None, kind_default: bool = False,
                      **extra: tuple[Any, Any]) -> type[BaseModel]:
    """A strict pydantic model with one field per spec (plus ``extra`` definitions).

    ``kind``: the model is one job kind's request, with a ``kind`` field that must be exactly this
    value (one model per kind of ``mae_service.jobs.spec.JOB_FIELDS``): required, or with
    ``kind_default`` optional and this value when omitted (the default kind)."""
    needed, examples = set(required), examples or {}
    fields = {s.name: field_definition(s, s.name in needed, examples.get(s.name)) for s in specs}
    if kind is not None:
        fields["kind"] = (Literal[kind], Field(kind if kind_default else ..., examples=[kind],  # type: ignore[valid-type]
                                               description="the job kind" + (" (the default)" if kind_default else "")))
    model = create_model(name, __config__=_STRICT, __doc__=doc or None, **fields, **extra)  # type: ignore[call-overload]
    return model
