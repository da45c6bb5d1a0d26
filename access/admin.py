"""The operators' console: its branding, the scoping every namespaced model admin shares, and the access models.

Two rules hold for every model admin in Gofer:

- **Tenancy.** A superuser sees everything. A staff user who is not a superuser sees exactly what the roles of their
  ``StaffAccess`` let a token see in the API: ``NamespacedAdminMixin`` derives every queryset, every foreign-key
  choice and every object permission from ``access.scope`` with ``principal_for_user(request.user)``. An object the
  user may not read is a 404, as in the API. Tokens, roles, staff access and system preferences are superuser-only.
- **Services.** The admin changes nothing itself. Saving, deleting and every action call the same service functions
  as the API (``ThroughServicesMixin``); a service error (``GoferError``) becomes an error message, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import NestedObjects, model_ngettext, quote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models, router, transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from access import scope
from access import services as access
from access.choices import Action, Resource, SystemRole
from access.models import Role, StaffAccess, SystemPreferences, Token
from access.permissions import InvalidPermission, Principal, validate_permissions
from apiv0.errors import Forbidden, GoferError, ValidationFailed
from pipelines.models import Namespace, Pipeline
from pipelines.validation import check_identifier

admin.site.site_header = "Gofer operators' console"
admin.site.site_title = "Gofer console"
admin.site.index_title = "Namespaces, pipelines, runs and access"

REDACTED = "[redacted]"


# --- Small shared helpers -------------------------------------------------------------------------------------------


NOBODY = Principal(kind="anonymous", name="anonymous", roles=())


def principal_of(request: HttpRequest) -> Principal:
    """The admin user's principal, computed once per request (superuser: everything; staff: their StaffAccess).

    Anyone else, such as the anonymous visitor of the login page (whose sidebar asks for permissions), gets a
    principal that grants nothing.
    """
    principal = getattr(request, "_gofer_admin_principal", None)
    if principal is None:
        user = request.user
        staff = user.is_authenticated and user.is_active and user.is_staff
        principal = access.principal_for_user(user) if staff else NOBODY
        request._gofer_admin_principal = principal  # type: ignore[attr-defined]
    return principal


def pretty_json(value: Any) -> str:
    return format_html('<pre style="margin:0">{}</pre>', json.dumps(value, indent=2, sort_keys=False, default=str))


def admin_link(obj: models.Model | None, text: object = None) -> str:
    """A link to ``obj``'s admin page, or plain text when it has none."""
    if obj is None:
        return "-"
    opts = obj._meta
    try:
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)])
    except NoReverseMatch:
        return str(text if text is not None else obj)
    return format_html('<a href="{}">{}</a>', url, text if text is not None else obj)


def changelist_link(model: type[models.Model], text: str, **filters: object) -> str:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, urlencode(filters), text)


def copy_fields(source: models.Model, target: models.Model) -> None:
    """Make ``target`` (the admin's form instance) the row a service saved, so the admin's redirects and log
    entries point at it."""
    for model_field in source._meta.concrete_fields:
        setattr(target, model_field.attname, getattr(source, model_field.attname))
    target._state.adding = False
    target._state.db = source._state.db


def _names(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown


@dataclass
class Outcome:
    """What an admin action did to each selected object, for ``report``."""

    done: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    denied: list[str] = field(default_factory=list)


def apply_each(objects: Iterable[Any], call: Callable[[Any], bool], outcome: Outcome | None = None) -> Outcome:
    """Call a service on each object; ``call`` returns whether something changed. GoferErrors are collected."""
    outcome = outcome or Outcome()
    for obj in objects:
        try:
            changed = call(obj)
        except GoferError as exc:
            outcome.failed.append(f"{obj} ({exc.message})")
            continue
        (outcome.done if changed else outcome.unchanged).append(str(obj))
    return outcome


def report(
    modeladmin: admin.ModelAdmin, request: HttpRequest, outcome: Outcome, *, verb: str, done: str, unchanged: str
) -> None:
    """One message per kind of outcome: ``Disabled 2 pipelines: ...``, ``Nothing to do for 1 pipeline (already
    disabled): ...``, ``Your roles do not allow you to disable ...``, ``Could not disable ...``."""
    opts = modeladmin.model._meta

    def count(items: list[str]) -> str:
        return f"{len(items)} {model_ngettext(opts, len(items))}"

    if outcome.done:
        modeladmin.message_user(request, f"{done} {count(outcome.done)}: {_names(outcome.done)}.", messages.SUCCESS)
    if outcome.unchanged:
        modeladmin.message_user(
            request,
            f"Nothing to do for {count(outcome.unchanged)} ({unchanged}): {_names(outcome.unchanged)}.",
            messages.INFO,
        )
    if outcome.denied:
        modeladmin.message_user(
            request,
            f"Your roles do not allow you to {verb} {count(outcome.denied)}: {_names(outcome.denied)}.",
            messages.ERROR,
        )
    if outcome.failed:
        modeladmin.message_user(
            request, f"Could not {verb} {count(outcome.failed)}: {_names(outcome.failed)}.", messages.ERROR
        )
    if not (outcome.done or outcome.unchanged or outcome.denied or outcome.failed):
        modeladmin.message_user(request, "Nothing was selected.", messages.WARNING)


# --- Tenancy ----------------------------------------------------------------------------------------------------------


class NamespacedAdminMixin:
    """Scopes a model admin (or inline) to what the admin user's Gofer roles allow, through ``access.scope`` only.

    Declare what the rows hang off:

    - ``scope_kind = "pipeline"`` (default) and ``scope_path``, the lookup path from the model to its Pipeline
      (``"pipeline"``, ``"config__pipeline"``, ``"pk"`` for Pipeline itself);
    - ``scope_kind = "namespace"``: ``scope_path`` leads to the Namespace;
    - ``scope_kind = "event"``: events, scoped by ``scope.events_for``;

    and ``scope_resources``, the resources the API requires besides the namespace and pipeline (``runs``,
    ``configs``...). Rows are then read-only by default: admins that change something through a service
    override ``has_add/change/delete_permission`` with ``allowed(...)``.
    """

    PIPELINE: ClassVar[str] = "pipeline"
    NAMESPACE: ClassVar[str] = "namespace"
    EVENT: ClassVar[str] = "event"

    scope_kind: ClassVar[str] = "pipeline"
    scope_path: ClassVar[str] = "pipeline"
    scope_resources: ClassVar[tuple[str, ...]] = ()

    model: type[models.Model]

    # -- what the principal may see or change

    def scoped(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        action: str = Action.READ,
        resources: tuple[str, ...] | None = None,
    ) -> QuerySet:
        """``queryset`` narrowed to the rows on which the principal may perform ``action``."""
        principal = principal_of(request)
        if principal.superuser:
            return queryset
        resources = self.scope_resources if resources is None else resources
        if self.scope_kind == self.NAMESPACE:
            allowed = scope.namespaces_for(principal, action, resources)
        elif self.scope_kind == self.PIPELINE:
            allowed = scope.pipelines_for(principal, action=action, resources=resources)
        else:
            # The API lets only admins delete events; reading is whatever events_for says.
            if action != Action.READ and not principal.is_admin:
                return queryset.none()
            allowed = scope.events_for(principal)
        return queryset.filter(**{f"{self.scope_path}__in": allowed.values("pk")})

    def may(
        self, request: HttpRequest, action: str, resources: tuple[str, ...] | None = None, *, admin: bool = False
    ) -> bool:
        """Whether the principal's roles grant ``action`` on this kind of row at all (in some namespace)."""
        principal = principal_of(request)
        if principal.superuser:
            return True
        resources = self.scope_resources if resources is None else resources
        if self.scope_kind == self.EVENT:
            untargeted = (Resource.EVENTS, *resources)
            admin = admin or action != Action.READ
        elif self.scope_kind == self.NAMESPACE:
            untargeted = (Resource.NAMESPACES, *resources)
        else:
            untargeted = (Resource.NAMESPACES, Resource.PIPELINES, *resources)
        try:
            scope.require(principal, action, untargeted, admin=admin)
        except Forbidden:
            return False
        return True

    def allowed(
        self,
        request: HttpRequest,
        action: str,
        obj: models.Model | None = None,
        resources: tuple[str, ...] | None = None,
        *,
        admin: bool = False,
    ) -> bool:
        """``may``, and for an object of this admin's model, whether it is in the scope of ``action``.

        Inlines receive their parent as ``obj``; for them only the model-level answer applies (their rows are
        scoped by ``get_queryset``).
        """
        if not self.may(request, action, resources, admin=admin):
            return False
        if obj is None or not isinstance(obj, self.model) or principal_of(request).superuser:
            return True
        one = self.model._default_manager.filter(pk=obj.pk)
        return self.scoped(request, one, action, resources).exists()

    def split_allowed(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        action: str,
        resources: tuple[str, ...] | None = None,
        *,
        admin: bool = False,
    ) -> tuple[list[Any], Outcome]:
        """The selected rows the principal may act on, and an Outcome listing the others as denied."""
        if not self.may(request, action, resources, admin=admin):
            return [], Outcome(denied=[str(obj) for obj in queryset])
        allowed_pks = set(self.scoped(request, queryset, action, resources).values_list("pk", flat=True))
        outcome = Outcome()
        rows = []
        for obj in queryset:
            if obj.pk in allowed_pks:
                rows.append(obj)
            else:
                outcome.denied.append(str(obj))
        return rows, outcome

    # -- Django's hooks

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scoped(request, super().get_queryset(request))  # type: ignore[misc]

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        # Django redirects to the index for a missing object; Gofer answers 404 for objects outside one's scope
        # exactly as for objects that do not exist, so ids in other tenants cannot be probed.
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None:
            raise Http404(f"no {self.model._meta.verbose_name} with this id")
        return obj

    def formfield_for_foreignkey(self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any) -> Any:
        principal = principal_of(request)
        if not principal.superuser:
            if db_field.related_model is Namespace:
                kwargs["queryset"] = scope.namespaces_for(principal, Action.WRITE, self.scope_resources)
            elif db_field.related_model is Pipeline:
                kwargs["queryset"] = scope.pipelines_for(principal, action=Action.WRITE, resources=self.scope_resources)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.may(request, Action.READ)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.allowed(request, Action.READ, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInlineMixin:
    """An inline that only lists: no add, no edit, no delete."""

    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SuperuserOnlyMixin:
    """Model admins of system-wide data (tokens, roles, staff access, preferences): superusers only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and request.user.is_superuser


# --- Going through the services ---------------------------------------------------------------------------------------


class ThroughServicesMixin:
    """Saving and deleting in the admin call the app's services, never ``Model.save``/``delete``.

    Subclasses implement ``save_with_service`` (returning the saved row) and/or ``delete_with_service``. A
    GoferError from a service rolls back the admin's own transaction (its log entry included), shows the error and
    sends the operator back to the page they came from, instead of a success message or a 500.
    """

    model: type[models.Model]
    admin_site: admin.AdminSite
    message_user: Callable[..., None]

    def save_with_service(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> Any:
        raise PermissionDenied("this object is changed only by Gofer's engine")

    def delete_with_service(self, request: HttpRequest, obj: Any) -> None:
        raise PermissionDenied("this object is deleted only by Gofer's engine")

    def _service_failed(self, request: HttpRequest, what: str, exc: GoferError) -> None:
        request._gofer_service_failed = True  # type: ignore[attr-defined]
        if transaction.get_connection(router.db_for_write(self.model)).in_atomic_block:
            transaction.set_rollback(True, using=router.db_for_write(self.model))
        self.message_user(request, f"{what}: {exc.message}", messages.ERROR)

    @staticmethod
    def _failed(request: HttpRequest) -> bool:
        return getattr(request, "_gofer_service_failed", False)

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        try:
            saved = self.save_with_service(request, obj, form, change)
        except GoferError as exc:
            self._service_failed(request, f"{obj} was not saved", exc)
            return
        copy_fields(saved, obj)

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        # Services set related rows themselves (a token's roles); the admin writes none, and its inlines are
        # read-only: they are recorded as unchanged instead of being saved.
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if self._failed(request):
            return None
        return super().log_addition(request, obj, message)  # type: ignore[misc]

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if self._failed(request):
            return None
        return super().log_change(request, obj, message)  # type: ignore[misc]

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: str | None = None) -> HttpResponse:
        if self._failed(request):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_add(request, obj, post_url_continue)  # type: ignore[misc]

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        if self._failed(request):
            return HttpResponseRedirect(request.get_full_path())
        return super().response_change(request, obj)  # type: ignore[misc]

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        try:
            self.delete_with_service(request, obj)
        except GoferError as exc:
            self._service_failed(request, f"{obj} was not deleted", exc)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        if self._failed(request):
            opts = self.model._meta
            return HttpResponseRedirect(
                reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(obj_id)])
            )
        return super().response_delete(request, obj_display, obj_id)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._delete_each(request, queryset)

    def _delete_each(self, request: HttpRequest, queryset: QuerySet) -> Outcome:
        outcome = Outcome()
        for obj in queryset:
            if not self.has_delete_permission(request, obj):  # type: ignore[attr-defined]
                outcome.denied.append(str(obj))
                continue
            try:
                # One savepoint per object: a refused delete leaves no log entry behind.
                with transaction.atomic(using=router.db_for_write(self.model)):
                    self.log_deletions(request, [obj])  # type: ignore[attr-defined]
                    self.delete_with_service(request, obj)
            except GoferError as exc:
                outcome.failed.append(f"{obj} ({exc.message})")
                continue
            outcome.done.append(str(obj))
        return outcome

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)  # type: ignore[misc]
        if "delete_selected" in actions:
            _, name, description = actions["delete_selected"]
            actions["delete_selected"] = (_delete_selected_through_service, name, description)
        return actions

    def get_deleted_objects(self, objs: Iterable[Any], request: HttpRequest) -> tuple[list, dict, set, list]:
        """What a delete will remove, as counts per type: the service owns the cascade, so the operator's right to
        delete the selected objects is what counts, not a Django permission on each row below them."""
        objs = list(objs)
        collector = NestedObjects(using=router.db_for_write(self.model))
        collector.collect(objs)
        model_count = {
            model._meta.verbose_name_plural: len(rows) for model, rows in collector.model_objs.items() if rows
        }
        listed = [format_html("{}: {}", capfirst(obj._meta.verbose_name), admin_link(obj)) for obj in objs]
        return listed, model_count, set(), [str(obj) for obj in collector.protected]


def _delete_selected_through_service(
    modeladmin: ThroughServicesMixin, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    """Django's "Delete selected" with its confirmation page, deleting each object through the service."""
    if not request.POST.get("post"):
        return django_delete_selected(modeladmin, request, queryset)
    outcome = modeladmin._delete_each(request, queryset)
    report(modeladmin, request, outcome, verb="delete", done="Deleted", unchanged="")  # type: ignore[arg-type]
    return None


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
            return access.create_role(data["id"], data["description"], data["permissions"])
        current = Role.objects.get(pk=obj.pk)
        access.update_role(current, data["description"], data["permissions"])
        return current

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
