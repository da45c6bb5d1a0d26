"""The operators' console for tokens, roles, staff access and system preferences (the helpers every admin test
shares are in tests/support/admin.py)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from access import services as access
from access.models import Role, StaffAccess, SystemPreferences, Token
from events.models import Event
from kernel.errors import Unavailable
from kernel.rbac import SYSTEM_PRINCIPAL
from runs import services as runs
from tests.conftest import FULL
from tests.support.admin import (
    TEAM_A_READ,
    User,
    change_url,
    changelist_url,
    delete_url,
    messages_of,
    staff_client,
)

# --- branding and the access models -------------------------------------------------------------------------------


@pytest.fixture
def token(db) -> Token:
    _, token = access.create_token("ci-bot", ["user"])
    return token


@pytest.fixture
def custom_role(db) -> Role:
    return access.create_role("readers", "read team-a", TEAM_A_READ)


def test_the_console_carries_gofer_branding(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "Gofer operators&#x27; console" in response.content.decode()


def test_the_login_page_renders_for_an_anonymous_visitor(client, db):
    response = client.get(reverse("admin:login"))
    assert response.status_code == 200
    assert client.get(reverse("admin:index")).status_code == 302


def test_every_access_page_renders_for_a_superuser(admin_client, admin_user, token, custom_role):
    StaffAccess.objects.create(user=admin_user).roles.set([custom_role])
    prefs = SystemPreferences.load()
    pages = [
        changelist_url(Token),
        change_url(token),
        reverse("admin:access_token_add"),
        changelist_url(Role),
        change_url(Role.objects.get(id="admin")),
        change_url(custom_role),
        reverse("admin:access_role_add"),
        changelist_url(StaffAccess),
        change_url(StaffAccess.objects.get()),
        reverse("admin:access_staffaccess_add"),
        changelist_url(SystemPreferences),
        change_url(prefs),
        change_url(admin_user),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
    listing = admin_client.get(changelist_url(Token)).content.decode()
    assert "ci-bot" in listing
    found = admin_client.get(changelist_url(Token), {"q": str(token.id)})
    assert [t.pk for t in found.context["cl"].result_list] == [token.pk]
    assert not admin_client.get(changelist_url(Token), {"q": "no-such-bot"}).context["cl"].result_list


def test_creating_a_token_shows_its_secret_once_and_stores_only_the_hash(admin_client):
    user_role = Role.objects.get(id="user")
    response = admin_client.post(
        reverse("admin:access_token_add"),
        {"user": "deploy-bot", "roles": [user_role.pk], "expires_in": "3600", "metadata": '{"team": "a"}'},
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    secrets_shown = re.findall(r"copy it now: <code>([A-Za-z0-9]{40})</code>", page)
    assert len(secrets_shown) == 1
    secret = secrets_shown[0]

    token = Token.objects.get(user="deploy-bot")
    assert token.hash == access.hash_secret(secret)
    assert access.authenticate(secret) == token
    assert list(token.roles.values_list("id", flat=True)) == ["user"]
    assert token.metadata == {"team": "a"}
    assert token.expires is not None
    assert Event.objects.filter(kind="created_token", details__token_id=str(token.id)).exists()

    # Never again: not on the next page, not on the token's own page, and the hash is never shown.
    for url in (changelist_url(Token), change_url(token)):
        later = admin_client.get(url).content.decode()
        assert secret not in later
        assert token.hash not in later


def test_a_token_needs_a_role(admin_client):
    response = admin_client.post(reverse("admin:access_token_add"), {"user": "nobody", "expires_in": "0"})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not Token.objects.filter(user="nobody").exists()


def test_tokens_cannot_be_edited_in_the_console(admin_client, token):
    response = admin_client.post(change_url(token), {"user": "renamed"})
    assert response.status_code == 403
    token.refresh_from_db()
    assert token.user == "ci-bot"


def test_the_disable_and_enable_actions_go_through_the_service(admin_client, token):
    response = admin_client.post(
        changelist_url(Token), {"action": "disable_tokens", "_selected_action": [str(token.pk)]}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.disabled is True
    assert Event.objects.filter(kind="updated_token", details__disabled=True).count() == 1
    assert any("Disabled 1 token" in m for m in messages_of(response))

    again = admin_client.post(changelist_url(Token), {"action": "disable_tokens", "_selected_action": [str(token.pk)]})
    assert any("already disabled" in m for m in messages_of(again))
    assert Event.objects.filter(kind="updated_token").count() == 1

    admin_client.post(changelist_url(Token), {"action": "enable_tokens", "_selected_action": [str(token.pk)]})
    token.refresh_from_db()
    assert token.disabled is False


def test_deleting_a_token_goes_through_the_service(admin_client, token):
    response = admin_client.post(delete_url(token), {"post": "yes"})
    assert response.status_code == 302
    assert not Token.objects.filter(pk=token.pk).exists()
    assert Event.objects.filter(kind="deleted_token", details__token_id=str(token.pk)).exists()


def test_system_roles_cannot_be_edited_or_deleted(admin_client):
    role = Role.objects.get(id="user")
    before = role.permissions

    page = admin_client.get(change_url(role))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()

    response = admin_client.post(change_url(role), {"description": "mine now", "permissions": "[]"})
    assert response.status_code == 403
    assert admin_client.post(delete_url(role), {"post": "yes"}).status_code == 403
    role.refresh_from_db()
    assert role.permissions == before
    assert role.description != "mine now"


def test_a_custom_role_with_a_bad_permission_is_refused_naming_the_problem(admin_client):
    response = admin_client.post(
        reverse("admin:access_role_add"),
        {"id": "broken", "description": "", "permissions": '[{"resources": ["nope"], "actions": ["read"]}]'},
    )
    assert response.status_code == 200
    assert "permissions[0].resources[0]: unknown resource &#x27;nope&#x27;" in response.content.decode()
    assert not Role.objects.filter(id="broken").exists()


def test_a_custom_role_is_created_changed_and_deleted_through_the_services(admin_client):
    permissions = '[{"resources": ["namespaces:^team-a$", "runs"], "actions": ["read", "read"]}]'
    response = admin_client.post(
        reverse("admin:access_role_add"), {"id": "team-a-runs", "description": "runs", "permissions": permissions}
    )
    assert response.status_code == 302
    role = Role.objects.get(id="team-a-runs")
    # Normalised by validate_permissions: the duplicate action is gone.
    assert role.permissions == [{"resources": ["namespaces:^team-a$", "runs"], "actions": ["read"]}]
    assert Event.objects.filter(kind="created_role", details__role_id="team-a-runs").exists()

    response = admin_client.post(change_url(role), {"description": "runs of team-a", "permissions": permissions})
    assert response.status_code == 302
    role.refresh_from_db()
    assert role.description == "runs of team-a"
    assert Event.objects.filter(kind="updated_role", details__role_id="team-a-runs").exists()

    assert admin_client.post(delete_url(role), {"post": "yes"}).status_code == 302
    assert not Role.objects.filter(id="team-a-runs").exists()
    assert Event.objects.filter(kind="deleted_role", details__role_id="team-a-runs").exists()


def test_system_preferences_is_a_singleton(admin_client):
    prefs = SystemPreferences.load()
    assert admin_client.get(reverse("admin:access_systempreferences_add")).status_code == 403
    assert admin_client.post(delete_url(prefs), {"post": "yes"}).status_code == 403
    listing = admin_client.get(changelist_url(SystemPreferences)).content.decode()
    assert "Add system preferences" not in listing
    assert SystemPreferences.objects.count() == 1


def test_the_kill_switch_actions_go_through_the_service(admin_client, team_a_pipeline):
    prefs = SystemPreferences.load()
    response = admin_client.post(
        changelist_url(SystemPreferences), {"action": "refuse_new_runs", "_selected_action": [str(prefs.pk)]}
    )
    assert response.status_code == 302
    assert SystemPreferences.load().ignore_pipeline_run_events is True
    assert Event.objects.filter(kind="updated_system_preferences").count() == 1
    assert any("New runs are now refused" in m for m in messages_of(response))
    with pytest.raises(Unavailable):
        runs.start_run(SYSTEM_PRINCIPAL, team_a_pipeline, {})

    admin_client.post(
        changelist_url(SystemPreferences), {"action": "accept_new_runs", "_selected_action": [str(prefs.pk)]}
    )
    assert SystemPreferences.load().ignore_pipeline_run_events is False
    assert Event.objects.filter(kind="updated_system_preferences").count() == 2


def test_saving_the_preferences_form_goes_through_the_service(admin_client):
    prefs = SystemPreferences.load()
    response = admin_client.post(change_url(prefs), {"ignore_pipeline_run_events": "on"})
    assert response.status_code == 302
    assert SystemPreferences.load().ignore_pipeline_run_events is True
    assert Event.objects.filter(kind="updated_system_preferences", details__ignore_pipeline_run_events=True).exists()


def test_access_models_are_superuser_only_even_for_staff_with_the_admin_role(db, token):
    client = staff_client("operator", [{"resources": ["all"], "actions": FULL}])
    for model in (Token, Role, StaffAccess, SystemPreferences):
        assert client.get(changelist_url(model)).status_code == 403, model
    assert client.get(change_url(token)).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert "Tokens" not in index
    assert "System preferences" not in index


def test_staff_access_is_granted_on_the_user_page_too(admin_client, custom_role):
    user = User.objects.create_user("carol", is_staff=True)
    page = admin_client.get(change_url(user)).content.decode()
    assert "Gofer access" in page

    response = admin_client.post(
        reverse("admin:access_staffaccess_add"), {"user": str(user.pk), "roles": [custom_role.pk]}
    )
    assert response.status_code == 302
    assert list(StaffAccess.objects.get(user=user).roles.values_list("id", flat=True)) == ["readers"]
