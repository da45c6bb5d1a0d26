"""The access models in the operators' console: tokens, roles, staff access and system preferences.

All of them are superuser-only, and every change goes through access/services.py (console/mixins.py says how).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from access import services as access
from access.models import Role, StaffAccess, SystemPreferences, Token
from console.mixins import SuperuserOnlyMixin, ThroughServicesMixin, apply_each, pretty_json, report
from kernel.choices import SystemRole
from kernel.errors import ValidationFailed
from kernel.identifiers import check_identifier
from kernel.rbac import InvalidPermission, validate_permissions

# --- Access models: superuser-only ------------------------------------------------------------------------------------


class TokenCreationForm(forms.ModelForm):
    roles = forms.ModelMultipleChoiceField(
        queryset=Role.objects.exclude(id=SystemRole.BOOTSTRAP),
        widget=forms.CheckboxSelectMultiple,
        help_text="At least one. The bootstrap role cannot be assigned.",
    )
    expires_in = forms.IntegerField(
        label="Expires in (seconds)",
        min_value=0,
        max_value=access.MAX_TOKEN_LIFETIME,
        initial=0,
        help_text="0: never expires.",
    )
    metadata = forms.JSONField(required=False, initial=dict, help_text='A JSON object of strings, e.g. {"team": "a"}.')

    class Meta:
        model = Token
        fields = ("user",)

    def clean_metadata(self) -> dict[str, str]:
        metadata = self.cleaned_data.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise forms.ValidationError("metadata must be a JSON object whose values are strings")
        return metadata


@admin.register(Token)
class TokenAdmin(SuperuserOnlyMixin, ThroughServicesMixin, admin.ModelAdmin):
    """API tokens. Created through ``create_token``: the secret is shown once, after saving; only its hash is
    stored, and the hash is never shown. Tokens cannot be edited, only disabled, enabled or deleted."""

    list_display = ("user", "kind", "role_list", "disabled", "expires", "last_used", "created", "id")
    list_filter = ("kind", "disabled", "roles")
    search_fields = ("user", "id")
    date_hierarchy = "created"
    ordering = ("-created",)
    actions = ("disable_tokens", "enable_tokens")
    readonly_fields = (
        "id",
        "user",
        "kind",
        "role_list",
        "metadata_display",
        "created",
        "expires",
        "is_expired",
        "disabled",
        "last_used",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("roles")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = TokenCreationForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("user", "roles", "expires_in", "metadata")
        return self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # No service edits a token; state changes are the disable/enable actions.
        return False

    @admin.display(description="roles")
    def role_list(self, token: Token) -> str:
        return ", ".join(role.id for role in token.roles.all())

    @admin.display(description="metadata")
    def metadata_display(self, token: Token) -> str:
        return pretty_json(token.metadata)

    @admin.display(description="expired", boolean=True)
    def is_expired(self, token: Token) -> bool:
        return token.is_expired

    def save_with_service(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> Token:
        data = form.cleaned_data
        secret, token = access.create_token(
            data["user"], [role.id for role in data["roles"]], data["expires_in"], data["metadata"]
        )
        messages.warning(
            request,
            format_html(
                "The secret of the token for {} is shown only this once; copy it now: <code>{}</code>",
                token.user,
                secret,
            ),
        )
        return token

    def delete_with_service(self, request: HttpRequest, obj: Token) -> None:
        access.delete_token(obj)

    def _set_disabled(self, request: HttpRequest, queryset: QuerySet, disabled: bool) -> None:
        outcome = apply_each(queryset, lambda token: access.set_token_disabled(token, disabled))
        word = "disabled" if disabled else "enabled"
        report(self, request, outcome, verb=word[:-1], done=word.capitalize(), unchanged=f"already {word}")

    @admin.action(description="Disable selected tokens (set_token_disabled)")
    def disable_tokens(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_disabled(request, queryset, True)

    @admin.action(description="Enable selected tokens (set_token_disabled)")
    def enable_tokens(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_disabled(request, queryset, False)


class RoleForm(forms.ModelForm):
    """Custom roles: checked by the same validation as the API's, with the error naming the faulty part."""

    class Meta:
        model = Role
        fields = ("id", "description", "permissions")
        help_texts = {
            "permissions": 'A JSON list: [{"resources": ["namespaces:^team-a$", "pipelines:.*", "runs"], '
            '"actions": ["read"]}].',
        }

    def clean_id(self) -> str:
        role_id = self.cleaned_data["id"]
        try:
            return check_identifier(role_id, "id", max_length=64, allow_underscore=True)
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_description(self) -> str:
        description = self.cleaned_data.get("description") or ""
        if len(description) > 2000:
            raise forms.ValidationError("description: at most 2000 characters")
        return description

    def clean_permissions(self) -> list[dict[str, list[str]]]:
        try:
            return validate_permissions(self.cleaned_data.get("permissions"))
        except InvalidPermission as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Role)
class RoleAdmin(SuperuserOnlyMixin, ThroughServicesMixin, admin.ModelAdmin):
    """Roles. System roles are read-only; custom roles are created, changed and deleted through the services."""

    form = RoleForm
    list_display = ("id", "system_role", "permission_summary", "token_count", "staff_count", "created")
    list_filter = ("system_role",)
    search_fields = ("id", "description")
    ordering = ("id",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _tokens=models.Count("tokens", distinct=True),
                _staff=models.Count("staff", distinct=True),
            )
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("id", "description", "permissions")
        if obj.system_role:
            return ("id", "system_role", "description", "permissions_display", "created")
        return ("id", "system_role", "description", "permissions", "created")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        if obj.system_role:
            return ("id", "system_role", "description", "permissions_display", "created")
        return ("id", "system_role", "created")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and not (obj is not None and obj.system_role)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.system_role)

    @admin.display(description="permissions")
    def permissions_display(self, role: Role) -> str:
        return pretty_json(role.permissions)

    @admin.display(description="permissions")
    def permission_summary(self, role: Role) -> str:
        parts = [f"{'/'.join(p.get('actions', []))} on {', '.join(p.get('resources', []))}" for p in role.permissions]
        text = "; ".join(parts)
        return text if len(text) <= 120 else text[:117] + "..."

    @admin.display(description="tokens", ordering="_tokens")
    def token_count(self, role: Role) -> int:
        return role._tokens

    @admin.display(description="staff", ordering="_staff")
    def staff_count(self, role: Role) -> int:
        return role._staff

    def save_with_service(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> Role:
        data = form.cleaned_data
        if not change:
            role = access.create_role(data["id"], data["description"], data["permissions"])
        else:
            role = Role.objects.get(pk=obj.pk)
            access.update_role(role, data["description"], data["permissions"])
        # Targets whose meaning changed when targets became anchored (issue 8): said here as in the API.
        for warning in access.role_warnings(role.id, role.permissions):
            messages.warning(request, f"{warning['field']}: {warning['message']}")
        return role

    def delete_with_service(self, request: HttpRequest, obj: Role) -> None:
        access.delete_role(obj)


class StaffAccessInline(SuperuserOnlyMixin, admin.StackedInline):
    """On a user's page: the Gofer roles that scope what this staff user sees in the console."""

    model = StaffAccess
    can_delete = True
    filter_horizontal = ("roles",)
    verbose_name = "Gofer access (roles scoping this staff user in the console)"
    verbose_name_plural = verbose_name


@admin.register(StaffAccess)
class StaffAccessAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    """Which Gofer roles scope a non-superuser staff user in this console. There is no service for it: these rows
    are only read by ``principal_for_user``, and they publish no event."""

    list_display = ("user", "role_list", "is_staff", "is_superuser")
    list_select_related = ("user",)
    list_filter = ("roles",)
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user",)
    filter_horizontal = ("roles",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("roles")

    @admin.display(description="roles")
    def role_list(self, obj: StaffAccess) -> str:
        return ", ".join(role.id for role in obj.roles.all()) or "(none: sees nothing)"

    @admin.display(boolean=True, description="staff")
    def is_staff(self, obj: StaffAccess) -> bool:
        return obj.user.is_staff

    @admin.display(boolean=True, description="superuser (sees everything)")
    def is_superuser(self, obj: StaffAccess) -> bool:
        return obj.user.is_superuser


@admin.register(SystemPreferences)
class SystemPreferencesAdmin(SuperuserOnlyMixin, ThroughServicesMixin, admin.ModelAdmin):
    """The single row of system-wide switches; the kill switch changes only through update_system_preferences."""

    list_display = ("__str__", "ignore_pipeline_run_events", "bootstrap_token_created")
    fields = ("ignore_pipeline_run_events", "bootstrap_token_created")
    readonly_fields = ("bootstrap_token_created",)
    actions = ("refuse_new_runs", "accept_new_runs")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        SystemPreferences.load()  # the singleton always exists, so there is never anything to add
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_with_service(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> SystemPreferences:
        access.update_system_preferences(form.cleaned_data["ignore_pipeline_run_events"])
        return SystemPreferences.load()

    def _kill_switch(self, request: HttpRequest, on: bool) -> None:
        changed = access.update_system_preferences(on)
        state = "refused (kill switch on)" if on else "accepted (kill switch off)"
        if changed:
            self.message_user(request, f"New runs are now {state}.", messages.SUCCESS)
        else:
            self.message_user(request, f"Nothing changed: new runs were already {state}.", messages.INFO)

    @admin.action(description="Refuse new runs: turn the kill switch on (update_system_preferences)")
    def refuse_new_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._kill_switch(request, True)

    @admin.action(description="Accept new runs: turn the kill switch off (update_system_preferences)")
    def accept_new_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._kill_switch(request, False)


# A user's Gofer roles are granted on the user's own page too (the auth app registered its admin before ours).
User = get_user_model()
if admin.site.is_registered(User):
    _BaseUserAdmin = type(admin.site.get_model_admin(User))
    admin.site.unregister(User)

    @admin.register(User)
    class GoferUserAdmin(_BaseUserAdmin):  # type: ignore[valid-type,misc]
        inlines = (*_BaseUserAdmin.inlines, StaffAccessInline)
