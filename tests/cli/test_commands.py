"""Every command group against a live server: --output json is the raw API fields, plain is tab-separated, lists
paginate, writes report whether they changed anything."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cli.conftest import Gofer, counting_pipeline
from tests.conftest import deployed_pipeline, make_caller, simple_config

pytestmark = [pytest.mark.slow]

NAMESPACE_FIELDS = {"id", "name", "description", "created", "modified", "allow_attach"}
PIPELINE_FIELDS = {"namespace_id", "pipeline_id", "state", "created", "modified"}
CONFIG_FIELDS = {
    "namespace_id",
    "pipeline_id",
    "version",
    "parallelism",
    "name",
    "description",
    "registered",
    "deprecated",
    "state",
    "tasks",
}
DEPLOYMENT_FIELDS = {
    "namespace_id",
    "pipeline_id",
    "deployment_id",
    "start_version",
    "end_version",
    "started",
    "ended",
    "state",
    "status",
    "status_reason",
    "logs",
}
TOKEN_FIELDS = {"id", "user", "kind", "roles", "metadata", "created", "expires", "disabled", "last_used"}
ROLE_FIELDS = {"id", "description", "permissions", "system_role"}
EVENT_FIELDS = {"id", "kind", "emitted"}
SECRET_FIELDS = {"key", "namespaces", "created"}
OBJECT_FIELDS = {"key", "created"}


def test_json_output_of_namespace_commands_is_the_raw_api_fields(gofer: Gofer, home):
    created = gofer.json("namespace", "create", "team-a", "Team A", "the A team")
    assert set(created["namespace"]) == NAMESPACE_FIELDS
    assert created["namespace"]["id"] == "team-a" and isinstance(created["namespace"]["created"], int)
    assert gofer.json("namespace", "get", "team-a")["namespace"]["name"] == "Team A"
    listed = gofer.json("namespace", "list")
    assert [n["id"] for n in listed["namespaces"]] == ["default", "team-a"]
    assert all(set(n) == NAMESPACE_FIELDS for n in listed["namespaces"])

    updated = gofer.json("namespace", "update", "team-a", "--description", "renamed")
    assert updated["changed"] is True and updated["namespace"]["description"] == "renamed"
    again = gofer.json("namespace", "update", "team-a", "--description", "renamed")
    assert again["changed"] is False and again["message"].startswith("nothing changed")

    saved = gofer.json("namespace", "set", "team-a")
    assert saved == {"namespace": "team-a", "config_file": str(home / ".config" / "gofer" / "config.toml")}
    assert 'namespace = "team-a"' in (home / ".config" / "gofer" / "config.toml").read_text()
    assert gofer.json("context")["settings"]["namespace"]["value"] == "team-a"

    assert gofer.json("namespace", "delete", "team-a") == {"changed": True, "message": None}
    assert gofer("namespace", "get", "team-a", expect=3).code == 3


def test_json_output_of_pipeline_config_and_deployment_commands_is_the_raw_api_fields(gofer: Gofer):
    deployed_pipeline("default", "build", simple_config("build"))
    assert [set(p) for p in gofer.json("pipeline", "list")["pipelines"]] == [PIPELINE_FIELDS]
    shown = gofer.json("pipeline", "get", "build")
    assert set(shown) == {"pipeline", "config"}
    assert set(shown["pipeline"]) == PIPELINE_FIELDS
    assert shown["config"]["version"] == 1 and shown["config"]["state"] == "live"
    assert set(shown["config"]["tasks"]) == {"compile", "test"}

    assert gofer.json("pipeline", "disable", "build") == {"changed": True, "message": None}
    assert gofer.json("pipeline", "get", "build")["pipeline"]["state"] == "disabled"
    noop = gofer.json("pipeline", "disable", "build")
    # The server's message, or none at all: the coming server answers a no-op PATCH with 204 and a header.
    assert noop["changed"] is False and (noop["message"] is None or "already disabled" in noop["message"])
    assert "already disabled" in gofer("pipeline", "disable", "build").stdout
    assert gofer.json("pipeline", "enable", "build")["changed"] is True

    configs = gofer.json("pipeline", "config", "list", "build")["configs"]
    assert [c["version"] for c in configs] == [1] and set(configs[0]) >= CONFIG_FIELDS
    assert gofer.json("pipeline", "config", "get", "build", "1")["config"]["state"] == "live"
    assert gofer.json("pipeline", "config", "get", "build")["config"]["version"] == 1  # no version: the latest
    redeploy = gofer.json("pipeline", "config", "deploy", "build", "1")
    assert redeploy["changed"] is False and set(redeploy["deployment"]) == DEPLOYMENT_FIELDS

    deployments = gofer.json("pipeline", "deployment", "list", "build")["deployments"]
    assert [set(d) for d in deployments] == [DEPLOYMENT_FIELDS]
    one = gofer.json("pipeline", "deployment", "get", "build", "1")["deployment"]
    assert one["end_version"] == 1 and one["status"] == "Successful"

    assert gofer.json("pipeline", "delete", "build")["changed"] is True
    assert gofer.json("pipeline", "list") == {"pipelines": []}


def test_objects_go_up_and_come_back_byte_for_byte(gofer: Gofer, home):
    deployed_pipeline("default", "build", simple_config("build"))
    payload = bytes(range(256)) * 64
    (home / "blob.bin").write_bytes(payload)
    stored = gofer.json("pipeline", "object", "put", "build", "blob", "blob.bin")
    assert set(stored["object"]) == OBJECT_FIELDS and stored["object"]["key"] == "blob"
    gofer("pipeline", "object", "get", "build", "blob", "--file", "copy.bin")
    assert (home / "copy.bin").read_bytes() == payload
    to_stdout = subprocess.run(
        [sys.executable, "-m", "gofer_cli", "pipeline", "object", "get", "build", "blob"],
        env=gofer.base_env(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert to_stdout.stdout == payload
    gofer.json("pipeline", "object", "put", "build", "greeting", "-", input="hello\n")
    described = gofer.json("pipeline", "object", "get", "build", "greeting")
    assert described == {"key": "greeting", "size": 6, "content": "hello\n", "content_base64": "aGVsbG8K"}
    keys = [o["key"] for o in gofer.json("pipeline", "object", "list", "build")["objects"]]
    assert keys == ["blob", "greeting"]
    gofer("pipeline", "object", "put", "build", "greeting", "-", input="again\n", expect=5)
    gofer("pipeline", "object", "put", "build", "greeting", "-", "--force", input="again\n")
    assert gofer.json("pipeline", "object", "get", "build", "greeting")["content"] == "again\n"
    assert gofer.json("pipeline", "object", "delete", "build", "greeting")["changed"] is True

    counting_pipeline("count", n=1, pause=0)
    run_id = gofer.json("pipeline", "run", "count", "--wait")["run"]["run_id"]
    gofer.json("run", "object", "put", "count", str(run_id), "report", "-", input="ok")
    assert [o["key"] for o in gofer.json("run", "object", "list", "count", str(run_id))["objects"]] == ["report"]
    assert gofer("run", "object", "get", "count", str(run_id), "report").stdout == "ok"
    assert gofer.json("run", "object", "delete", "count", str(run_id), "report")["changed"] is True


def test_secrets_are_stored_listed_revealed_only_when_asked_and_deleted(gofer: Gofer, home):
    deployed_pipeline("default", "build", simple_config("build"))
    stored = gofer.json("pipeline", "secret", "put", "build", "api_key", "s3cr3t-value")
    assert set(stored["secret"]) == SECRET_FIELDS
    assert [set(s) for s in gofer.json("pipeline", "secret", "list", "build")["secrets"]] == [SECRET_FIELDS]
    hidden = gofer.json("pipeline", "secret", "get", "build", "api_key")
    assert "secret" not in hidden and hidden["metadata"]["key"] == "api_key"
    assert gofer.json("pipeline", "secret", "get", "build", "api_key", "-i")["secret"] == "s3cr3t-value"
    (home / "value.txt").write_text("from-a-file")
    gofer("pipeline", "secret", "put", "build", "api_key", "@value.txt", expect=5)
    gofer("pipeline", "secret", "put", "build", "api_key", "@value.txt", "--force")
    assert gofer.json("pipeline", "secret", "get", "build", "api_key", "-i")["secret"] == "from-a-file"
    assert gofer.json("pipeline", "secret", "delete", "build", "api_key")["changed"] is True

    made = gofer.json("secret", "global", "put", "registry", "-", "-n", "^team-", input="t0ken")
    assert made["secret"]["namespaces"] == ["^team-"]
    assert [s["key"] for s in gofer.json("secret", "global", "list")["secrets"]] == ["registry"]
    assert gofer.json("secret", "global", "get", "registry", "--include-secret")["secret"] == "t0ken"
    assert gofer.json("secret", "global", "delete", "registry")["changed"] is True


def test_tokens_are_created_shown_once_disabled_enabled_and_deleted(gofer: Gofer):
    created = gofer.json("token", "create", "ci-bot", "--role", "user", "--expires", "3600", "-m", "team=a")
    assert set(created) == {"secret", "token_details"} and set(created["token_details"]) == TOKEN_FIELDS
    token_id = created["token_details"]["id"]
    assert created["token_details"]["metadata"] == {"team": "a"} and created["token_details"]["roles"] == ["user"]
    assert gofer("token", "create", "plain-bot", "-r", "user", "-o", "plain").stdout.strip().isalnum()
    assert token_id in [t["id"] for t in gofer.json("token", "list", "--all")["tokens"]]
    assert gofer.json("token", "get", token_id)["token"]["user"] == "ci-bot"
    as_bot = Gofer(gofer.url, gofer.home, created["secret"])
    assert as_bot.json("token", "whoami")["token"]["id"] == token_id

    assert gofer.json("token", "disable", token_id)["changed"] is True
    assert gofer.json("token", "disable", token_id)["changed"] is False
    assert as_bot("token", "whoami", expect=4).code == 4
    assert gofer.json("token", "enable", token_id)["changed"] is True
    assert gofer.json("token", "delete", token_id)["changed"] is True


def test_bootstrap_works_once_and_prints_only_the_secret_in_plain_output(anonymous_gofer: Gofer):
    secret = anonymous_gofer("token", "bootstrap", "-o", "plain").stdout.strip()
    assert len(secret) == 40
    assert (
        Gofer(anonymous_gofer.url, anonymous_gofer.home, secret).json("token", "whoami")["token"]["kind"] == "bootstrap"
    )
    again = anonymous_gofer("token", "bootstrap", expect=5)
    assert "conflict" in again.stderr


def test_roles_take_permissions_in_a_compact_form_or_as_json(gofer: Gofer):
    made = gofer.json(
        "role",
        "create",
        "deployers",
        "deploy team-a",
        "-p",
        "namespaces:^team-a$,pipelines:.*,configs,deployments,runs=read,write",
    )
    assert set(made["role"]) == ROLE_FIELDS
    assert made["role"]["permissions"] == [
        {
            "resources": ["namespaces:^team-a$", "pipelines:.*", "configs", "deployments", "runs"],
            "actions": ["read", "write"],
        }
    ]
    assert "deployers" in [r["id"] for r in gofer.json("role", "list", "--all")["roles"]]
    permissions = json.dumps([{"resources": ["all"], "actions": ["read"]}])
    updated = gofer.json("role", "update", "deployers", "--permissions-json", permissions)
    assert updated["changed"] is True and updated["role"]["permissions"] == [
        {"resources": ["all"], "actions": ["read"]}
    ]
    assert gofer.json("role", "get", "deployers")["role"]["description"] == "deploy team-a"
    assert gofer.json("role", "delete", "deployers")["changed"] is True


def test_system_preferences_are_read_and_the_kill_switch_is_toggled(gofer: Gofer):
    assert set(gofer.json("system", "get")) == {"bootstrap_token_created", "ignore_pipeline_run_events"}
    on = gofer.json("system", "update", "--ignore-pipeline-run-events")
    assert on["changed"] is True and on["ignore_pipeline_run_events"] is True
    assert gofer.json("system", "update", "--ignore-pipeline-run-events")["changed"] is False
    deployed_pipeline("default", "build", simple_config("build"))
    refused = gofer("pipeline", "run", "build", expect=6)
    assert "unavailable" in refused.stderr and "kill switch" in refused.stderr
    assert gofer.json("system", "update", "--no-ignore-pipeline-run-events")["ignore_pipeline_run_events"] is False


def test_events_are_listed_fetched_and_followed_one_json_object_per_line(gofer: Gofer):
    gofer("namespace", "create", "team-a", "Team A")
    events = gofer.json("event", "list", "--reverse", "--limit", "1")["events"]
    assert len(events) == 1 and set(events[0]) == EVENT_FIELDS
    assert events[0]["kind"] == {"created_namespace": {"namespace_id": "team-a"}}
    assert gofer.json("event", "get", events[0]["id"])["event"] == events[0]

    follower = subprocess.Popen(
        [sys.executable, "-m", "gofer_cli", "event", "list", "--follow", "--output", "json"],
        env=gofer.base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The stream only carries what happens after it opened: create namespaces until one arrives.
        import select

        for attempt in range(20):
            gofer("namespace", "create", f"live-{attempt}", "Live")
            ready, _, _ = select.select([follower.stdout], [], [], 1.0)
            if ready:
                break
        line = follower.stdout.readline()
        event = json.loads(line)
        assert set(event) == EVENT_FIELDS and "created_namespace" in event["kind"]
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_every_list_takes_limit_offset_reverse_and_all(gofer: Gofer):
    for name in ("ns-b", "ns-d", "ns-a", "ns-c"):
        access_free = gofer("namespace", "create", name, name.upper())
        assert access_free.code == 0
    ids = lambda result: [n["id"] for n in result["namespaces"]]  # noqa: E731
    assert ids(gofer.json("namespace", "list")) == ["default", "ns-a", "ns-b", "ns-c", "ns-d"]
    assert ids(gofer.json("namespace", "list", "--limit", "2")) == ["default", "ns-a"]
    assert ids(gofer.json("namespace", "list", "--limit", "2", "--offset", "2")) == ["ns-b", "ns-c"]
    assert ids(gofer.json("namespace", "list", "--reverse", "-l", "1")) == ["ns-d"]
    assert ids(gofer.json("namespace", "list", "--all", "--offset", "3")) == ["ns-c", "ns-d"]
    refused = gofer("namespace", "list", "--all", "--limit", "2", expect=2)
    assert "--all and --limit" in refused.stderr
    assert gofer("namespace", "list", "--limit", "501", expect=2).code == 2
    # The same flags on other lists, which the server paginates the same way.
    for args in (["token", "list"], ["role", "list"], ["event", "list"]):
        first = gofer.json(*args, "--limit", "1", "--offset", "0", "--reverse")
        assert len(next(iter(first.values()))) == 1, args
    assert len(gofer.json("role", "list", "--all")["roles"]) >= 4  # the system roles at least


def test_plain_output_is_tab_separated_raw_values_without_a_header(gofer: Gofer):
    gofer("namespace", "create", "team-a", "Team A", "desc")
    lines = gofer("namespace", "list", "-o", "plain").stdout.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [
        ["default", "Default", "The default namespace."],
        ["team-a", "Team A", "desc"],
    ]
    created = int(lines[1].split("\t")[3])
    assert created > 1_700_000_000_000  # epoch milliseconds, not "5m ago"


def test_human_output_is_a_table_without_colour_off_a_terminal(gofer: Gofer):
    gofer("namespace", "create", "team-a", "Team A")
    result = gofer("namespace", "list", env={"NO_COLOR": "1"})
    assert result.stdout.splitlines()[0].split() == ["ID", "NAME", "DESCRIPTION", "CREATED", "MODIFIED"]
    assert "just now" in result.stdout or "ago" in result.stdout
    assert "\x1b[" not in result.stdout


def test_a_user_token_sees_only_its_namespace(gofer: Gofer):
    secret = make_caller("user@example.com", ["user"]).token
    gofer("namespace", "create", "team-a", "Team A")
    as_user = Gofer(gofer.url, gofer.home, secret)
    assert [n["id"] for n in as_user.json("namespace", "list")["namespaces"]] == ["default"]
