"""The functions the run engine calls to turn ``pipeline_secret{{k}}`` / ``global_secret{{k}}`` into values."""

from __future__ import annotations

import pytest

from secretstore import services
from secretstore.services import SecretNotAllowed, SecretNotFound, SecretResolutionError
from tests.conftest import deployed_pipeline

VALUE = "resolve-me-Q8k2"


@pytest.fixture
def build(team_a_pipeline):
    return team_a_pipeline


def test_a_pipelines_own_secret_resolves(build):
    services.put_pipeline_secret(build, "db_password", VALUE)
    assert services.resolve_pipeline_secret(build, "db_password") == VALUE


def test_another_pipelines_key_does_not_exist_from_this_pipeline(build):
    other = deployed_pipeline("team-a", "deploy")
    services.put_pipeline_secret(other, "deploy_key", VALUE)
    with pytest.raises(SecretNotFound) as caught:
        services.resolve_pipeline_secret(build, "deploy_key")
    assert caught.value.key == "deploy_key"
    assert "deploy_key" in str(caught.value)
    assert "team-a/build" in str(caught.value)
    assert VALUE not in str(caught.value)


def test_a_missing_pipeline_secret_is_secret_not_found_naming_the_key(build):
    with pytest.raises(SecretNotFound, match="'nope' does not exist"):
        services.resolve_pipeline_secret(build, "nope")


def test_a_key_that_breaks_the_key_rule_is_not_found(build):
    with pytest.raises(SecretNotFound, match="not a valid secret key"):
        services.resolve_pipeline_secret(build, "../global/x")


def test_a_global_secret_resolves_in_an_allowed_namespace(namespaces):
    services.put_global_secret("slack", VALUE, ["^team-"])
    assert services.resolve_global_secret("team-a", "slack") == VALUE
    assert services.resolve_global_secret(namespaces["team-b"], "slack") == VALUE


def test_a_global_secret_for_prod_used_from_default_is_not_allowed(db):
    services.put_global_secret("prod_db", VALUE, ["^prod$"])
    with pytest.raises(SecretNotAllowed) as caught:
        services.resolve_global_secret("default", "prod_db")
    assert caught.value.key == "prod_db"
    assert "prod_db" in str(caught.value)
    assert "default" in str(caught.value)
    assert VALUE not in str(caught.value)
    assert isinstance(caught.value, SecretResolutionError)


def test_the_namespace_check_is_made_again_at_use_time(db):
    services.put_global_secret("rotating", VALUE, [".*"])
    assert services.resolve_global_secret("default", "rotating") == VALUE
    services.put_global_secret("rotating", VALUE, ["^prod$"], force=True)
    with pytest.raises(SecretNotAllowed):
        services.resolve_global_secret("default", "rotating")


def test_regexes_match_anywhere_like_gofers_but_not_a_longer_name(db):
    services.put_global_secret("k_1", VALUE, ["my_namespacee", "^test\\d+$"])
    assert services.resolve_global_secret("test123", "k_1") == VALUE
    with pytest.raises(SecretNotAllowed):
        services.resolve_global_secret("my_namespace", "k_1")


def test_a_missing_global_secret_is_secret_not_found_naming_the_key(db):
    with pytest.raises(SecretNotFound, match="'ghost'"):
        services.resolve_global_secret("default", "ghost")


def test_a_stored_regex_that_no_longer_compiles_allows_nothing(db):
    services.put_global_secret("k_2", VALUE, [".*"])
    from secretstore.models import GlobalSecret

    GlobalSecret.objects.filter(key="k_2").update(namespaces=["(broken"])
    with pytest.raises(SecretNotAllowed):
        services.resolve_global_secret("default", "k_2")


def test_pipeline_secrets_do_not_resolve_as_global_secrets(build):
    services.put_pipeline_secret(build, "shared_name", VALUE)
    with pytest.raises(SecretNotFound):
        services.resolve_global_secret("team-a", "shared_name")
