"""OpenAPI request schemas for routes that take a plain dict and dispatch on one field.

``POST /api/jobs`` reads its body as a dict and picks the request model by ``kind`` itself, so an
omitted kind means pretraining and each kind's problems are reported in its field table's words
before pydantic sees the body. FastAPI then documents only "an object". A pydantic discriminated
union as the body would validate before the handler, answer with pydantic's union messages (tag
errors, locations prefixed by the tag) instead of ours, and could default a missing ``kind`` only
through a callable discriminator, which OpenAPI cannot describe. So validation stays in the handler
and the document is built from the very models the handler validates with: the route's
``openapi_extra`` (``DispatchBody.openapi_extra``) sets its body to a ``oneOf`` of them with a
``discriminator`` mapping, and ``document_dispatch_bodies`` adds the models to
``components.schemas``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class DispatchBody:
    """A JSON body that is one of ``models``, by the value of ``field`` (``default`` when absent)."""

    field: str
    models: Mapping[str, type[BaseModel]]
    default: str | None = None
    description: str = ""

    def schema(self) -> dict[str, Any]:
        refs = {value: REF.format(model=m.__name__) for value, m in self.models.items()}
        return {"oneOf": [{"$ref": ref} for ref in refs.values()],
                "discriminator": {"propertyName": self.field, "mapping": refs}}

    def openapi_extra(self) -> dict[str, Any]:
        """For the route decorator: FastAPI merges it into the operation."""
        note = f" `{self.field}` omitted means `{self.default}`." if self.default else ""
        return {"requestBody": {"description": (self.description + note).strip(), "required": True,
                                "content": {"application/json": {"schema": self.schema()}}}}

    def components(self) -> dict[str, Any]:
        """The models' validation JSON schemas, and those of the models they use, by name."""
        _, doc = models_json_schema([(m, "validation") for m in self.models.values()],
                                    ref_template=REF)
        return doc.get("$defs", {})


def document_dispatch_bodies(app: FastAPI, bodies: Iterable[DispatchBody]) -> None:
    """Add the models of ``bodies`` to ``app.openapi()``'s components, and keep only the oneOf
    as the schema of each operation whose body is one of them (FastAPI's merge of
    ``openapi_extra`` leaves the dict parameter's ``type: object`` beside it)."""
    build, bodies = app.openapi, list(bodies)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for body in bodies:
            for name, model_schema in body.components().items():
                if components.setdefault(name, model_schema) != model_schema:
                    raise RuntimeError(f"two different OpenAPI schemas are named {name}")
            wanted = body.schema()
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    content = operation.get("requestBody", {}).get("content", {})
                    json_body = content.get("application/json", {})
                    if json_body.get("schema", {}).get("discriminator") == wanted["discriminator"]:
                        json_body["schema"] = wanted
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
