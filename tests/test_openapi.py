"""The OpenAPI document we serve, and the coverage of Gofer v0's paths by our URL conf.

Gofer v0's contract is read from tests/fixtures/gofer_v0_contract.json (every path and method with its operation id,
tag and success codes), which tests/fixtures/update_gofer_v0_contract.py extracts from Gofer's OpenAPI document:
the suite reads nothing outside the repository. tests/test_v0_contract.py calls every route and checks the status
it actually answers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from drf_spectacular.validation import validate_schema

from tests.support.contract import METHODS, WEBSOCKET_ONLY, reference_operations
from tests.support.routes import api_routes, openapi_path

# Gofer v0 tags Gofer implements. Gofer calls the roles routes "Permissions".
CORE_TAGS = {
    "Namespaces",
    "Pipelines",
    "Configs",
    "Deployments",
    "Runs",
    "Tasks",
    "Tokens",
    "Permissions",
    "System",
    "Objects",
    "Secrets",
}
# Not built yet: extensions and subscriptions (triggers) are later work.
OUT_OF_SCOPE_TAGS = {"Extensions", "Subscriptions"}


def test_schema_is_a_valid_openapi_3_document(client, db):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Gofer"
    validate_schema(schema)


def test_schema_needs_no_token(client, db):
    assert client.get("/api/schema/").status_code == 200


def test_schema_shows_gofer_operation_ids_and_response_names(client, db):
    schema = json.loads(client.get("/api/schema/", {"format": "json"}).content)
    operations = {
        op["operationId"]: (path, method)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }
    assert operations["start_run"] == ("/api/namespaces/{namespace_id}/pipelines/{pipeline_id}/runs", "post")
    assert operations["create_bootstrap_token"] == ("/api/tokens/bootstrap", "post")
    assert {"ListRunsResponse", "RegisterPipelineConfigResponse"} <= set(schema["components"]["schemas"])


def test_schema_describes_bearer_tokens(client, db):
    schema = json.loads(client.get("/api/schema/", {"format": "json"}).content)
    assert schema["components"]["securitySchemes"]["goferToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A Gofer token: 'Authorization: Bearer <token>'.",
    }
    start_run = schema["paths"]["/api/namespaces/{namespace_id}/pipelines/{pipeline_id}/runs"]["post"]
    assert {"goferToken": []} in start_run["security"]


def test_docs_page_renders(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"redoc" in response.content.lower()


def our_routes() -> set[tuple[str, str]]:
    """(/api/path/{param}, METHOD) for every route with a GoferAPIView rule."""
    return {(openapi_path(template), method) for template, method, _ in api_routes()}


def reference_tags() -> dict[tuple[str, str], str]:
    return {key: op["tag"] for key, op in reference_operations().items()}


def test_every_core_gofer_v0_route_exists_with_an_access_rule():
    reference = reference_tags()
    ours = {(method, path) for path, method in our_routes()}
    wanted = {op for op, tag in reference.items() if tag in CORE_TAGS | {"Events"}}
    missing = sorted(wanted - WEBSOCKET_ONLY - ours)
    assert missing == [], f"Gofer v0 routes without a GoferAPIView rule: {missing}"


def test_every_reference_tag_is_either_core_or_knowingly_out_of_scope():
    tags = set(reference_tags().values())
    assert tags <= CORE_TAGS | OUT_OF_SCOPE_TAGS | {"Events"}, tags - CORE_TAGS - OUT_OF_SCOPE_TAGS


def test_gofers_websocket_routes_are_served():
    from gofer_site.routing import websocket_urlpatterns

    served = {openapi_path(str(p.pattern)) for p in websocket_urlpatterns}
    assert {path for _, path in WEBSOCKET_ONLY} | {"/api/events"} <= served


def test_only_extension_and_subscription_routes_are_missing():
    reference = reference_tags()
    ours = {(method, path) for path, method in our_routes()}
    missing = {op for op in reference if op not in ours and op not in WEBSOCKET_ONLY and op != ("GET", "/api/events")}
    assert {reference[op] for op in missing} <= OUT_OF_SCOPE_TAGS, sorted(missing)


@pytest.mark.parametrize("path", ["/api/namespaces/{namespace_id}", "/api/tokens/{id}", "/api/roles/{role_id}"])
def test_path_parameters_use_gofers_names(path):
    assert path in {p for p, _ in our_routes()}


def our_schema(client) -> dict:
    return json.loads(client.get("/api/schema/", {"format": "json"}).content)


def test_every_operation_we_serve_has_gofers_operation_id_and_exactly_its_success_codes(client, db):
    """Extension and subscription routes too, as soon as they are served; a status the spec does not document is an
    error to a generated Gofer client, so our schema may document no other 2xx."""
    ours = our_schema(client)["paths"]
    served = our_routes()
    mismatched = []
    for (method, path), op in reference_operations().items():
        if (method, path) in WEBSOCKET_ONLY or (method, path) == ("GET", "/api/events"):
            continue
        mine = ours.get(path, {}).get(method.lower())
        if mine is None:
            if (path, method) in served or op["tag"] in CORE_TAGS | {"Events"}:
                mismatched.append((method, path, "missing from our schema"))
            continue
        if mine["operationId"] != op["operation_id"]:
            mismatched.append((method, path, f"operationId {mine['operationId']} != {op['operation_id']}"))
        success = sorted(code for code in mine["responses"] if code.startswith("2"))
        if success != op["success"]:
            mismatched.append((method, path, f"success codes {success} != {op['success']}"))
    assert mismatched == []


def test_the_contract_fixture_holds_every_operation_of_gofer_v0_extensions_and_subscriptions_included():
    reference = reference_operations()
    assert len(reference) == 77
    assert {op["tag"] for op in reference.values()} == CORE_TAGS | OUT_OF_SCOPE_TAGS | {"Events"}
    assert reference[("PATCH", "/api/namespaces/{namespace_id}/pipelines/{pipeline_id}")]["success"] == ["204"]
    assert reference[("POST", "/api/extensions")] == {
        "method": "POST",
        "path": "/api/extensions",
        "operation_id": "install_extension",
        "tag": "Extensions",
        "success": ["201"],
    }


API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
DOC_ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \| [^|]+ \|([^|]*)\|$")


def test_docs_api_md_lists_every_route_with_its_flags():
    """docs/api.md's route table is generated from the URL conf; a new or changed route must be documented."""
    documented = {}
    for line in API_DOC.read_text().splitlines():
        match = DOC_ROW.match(line)
        if match:
            documented[(match.group(1), match.group(2))] = {f.strip() for f in match.group(3).split(",") if f.strip()}
    actual = {}
    for template, method, rule in api_routes():
        path = openapi_path(template)
        actual[(method, path)] = {name for name in ("admin", "anonymous", "public") if getattr(rule, name)}
    assert sorted(set(actual) - set(documented)) == [], "routes missing from docs/api.md"
    assert sorted(set(documented) - set(actual)) == [], "docs/api.md lists routes that do not exist"
    assert {k: v for k, v in documented.items() if actual[k] != v} == {}, "flags in docs/api.md are wrong"
