"""/openapi.json documents POST /api/jobs as the oneOf of every kind's request model, with each
field's bounds, choices and default as mae_service.jobs.spec.JOB_FIELDS has them, and the
service refuses what the document says is out of bounds."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app import Settings, create_app
from mae_core.fields import FieldSpec
from mae_core.train.fields import FIELDS_BY_NAME, MODEL_OVERRIDE_FIELDS
from mae_service.jobs.spec import JOB_FIELDS, PRETRAIN

JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}
REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("openapi")
    app = create_app(Settings(checkpoint_dir=root / "checkpoints", data_dir=root / "data",
                              data_roots=[root / "images"]))
    return TestClient(app)  # no lifespan: neither the document nor the 422s need the model


@pytest.fixture(scope="module")
def doc(client):
    return client.get("/openapi.json").json()


def resolve(doc, ref: str) -> dict:
    assert ref.startswith(REF), ref
    return doc["components"]["schemas"][ref.removeprefix(REF)]


def value_schema(prop: dict) -> dict:
    """The non-null branch of an optional field's schema (a required field has no anyOf)."""
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    assert len(branches) == 1, prop
    return branches[0]


def check_property(spec: FieldSpec, prop: dict) -> None:
    value = value_schema(prop)
    assert value["type"] == JSON_TYPES[spec.type], spec.name
    lo_key = "exclusiveMinimum" if spec.exclusive_minimum else "minimum"
    hi_key = "exclusiveMaximum" if spec.exclusive_maximum else "maximum"
    assert value.get(lo_key) == spec.minimum and value.get(hi_key) == spec.maximum, spec.name
    other = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} - {lo_key, hi_key}
    assert not other & set(value), (spec.name, value)
    assert value.get("maxLength") == spec.max_length, spec.name
    assert value.get("enum") == (list(spec.choices) if spec.choices else None), spec.name
    if spec.default is not None:
        assert prop["default"] == spec.default, spec.name
    assert prop["description"].startswith(spec.help), spec.name


def body_models(doc) -> dict[str, dict]:
    body = doc["paths"]["/api/jobs"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    mapping = schema["discriminator"]["mapping"]
    assert schema["discriminator"]["propertyName"] == "kind"
    assert [o["$ref"] for o in schema["oneOf"]] == list(mapping.values())
    assert "kind" in body["description"] and PRETRAIN in body["description"]  # the default
    return {kind: resolve(doc, ref) for kind, ref in mapping.items()}


def test_every_kind_is_documented_with_its_field_table(doc):
    models = body_models(doc)
    assert set(models) == set(JOB_FIELDS)
    for kind, model in models.items():
        specs = {s.name: s for s in JOB_FIELDS[kind]}
        extra = {"model_overrides"} if kind == PRETRAIN else set()
        assert set(model["properties"]) == set(specs) | {"kind"} | extra, kind
        assert model["additionalProperties"] is False, kind  # unknown fields are refused
        for name, spec in specs.items():
            check_property(spec, model["properties"][name])
        kind_prop = model["properties"]["kind"]
        assert kind_prop["const"] == kind
        if kind == PRETRAIN:  # the default kind: may be left out
            assert kind_prop["default"] == PRETRAIN and "kind" not in model["required"]
            assert set(model["required"]) == {"dataset"}
        else:
            assert set(model["required"]) == {"kind", "checkpoint", "dataset"}


def test_model_overrides_are_documented_with_their_bounds(doc):
    prop = doc["components"]["schemas"]["JobRequest"]["properties"]["model_overrides"]
    overrides = resolve(doc, value_schema(prop)["$ref"])
    assert set(overrides["properties"]) == set(MODEL_OVERRIDE_FIELDS)
    for name in MODEL_OVERRIDE_FIELDS:
        check_property(FIELDS_BY_NAME[name], overrides["properties"][name])


def test_every_reference_resolves_and_every_json_body_is_a_model(doc):
    def refs(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(doc):
        resolve(doc, ref)
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                schema = content["schema"]
                assert "$ref" in schema or "oneOf" in schema, (method, path, media, schema)


def over_the_bound(spec: FieldSpec):
    """The smallest step past the spec's maximum (or below its minimum)."""
    if spec.maximum is not None:
        return spec.maximum if spec.exclusive_maximum else spec.maximum + 1
    return spec.minimum if spec.exclusive_minimum else spec.minimum - 1


@pytest.mark.parametrize("kind", list(JOB_FIELDS))
def test_what_the_document_bounds_the_service_refuses(client, doc, kind):
    model = body_models(doc)[kind]
    base = {"dataset": "nowhere"} if kind == PRETRAIN else {
        "kind": kind, "checkpoint": "nothing", "dataset": "nowhere"}
    bounded = [s for s in JOB_FIELDS[kind] if s.type in (int, float)
               and (s.maximum is not None or s.minimum is not None)]
    assert bounded, kind
    for spec in bounded:
        assert spec.name in model["properties"]
        resp = client.post("/api/jobs", json={**base, spec.name: over_the_bound(spec)})
        assert resp.status_code == 422, (kind, spec.name, resp.text)
        assert spec.name in resp.json()["message"], (kind, spec.name, resp.json())
    resp = client.post("/api/jobs", json={**base, "no_such_field": 1})
    assert resp.status_code == 422 and "no_such_field" in resp.json()["message"], resp.text


def test_an_undocumented_kind_is_refused_naming_the_documented_ones(client, doc):
    resp = client.post("/api/jobs", json={"kind": "cluster", "dataset": "nowhere"})
    assert resp.status_code == 422
    message = resp.json()["message"]
    assert "cluster" in message and all(kind in message for kind in body_models(doc))
    # kind left out, or given as the default: the same pretraining request (its dataset is unknown)
    for body in ({"dataset": "nowhere"}, {"kind": PRETRAIN, "dataset": "nowhere"}):
        resp = client.post("/api/jobs", json=body)
        assert resp.status_code == 422 and "dataset 'nowhere' not found" in resp.json()["message"]
