"""The operators' console: the machinery every model admin of every app shares.

Two rules hold for every model admin in Gofer:

- **Tenancy.** A superuser sees everything. A staff user who is not a superuser sees exactly what the roles of their
  ``StaffAccess`` let a token see in the API: ``NamespacedAdminMixin`` derives every queryset, every foreign-key
  choice and every object permission from ``kernel.scope`` (the model's declared ``tenancy``) with the principal
  the access gate gives for ``request.user``. An object the user may not read is a 404, as in the API.
- **Services.** The admin changes nothing itself. Saving, deleting and every action call the same service functions
  as the API (``ThroughServicesMixin``); a service error (``GoferError``) becomes an error message, never a 500.

The console imports only the kernel, so every app's admin can use it (docs/architecture.md, "Layers").
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
from django.core.exceptions import PermissionDenied
from django.db import models, router, transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from kernel import gate
from kernel import scope as tenancy
from kernel.choices import Action, Resource
from kernel.errors import GoferError
from kernel.rbac import Principal

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
        principal = gate.current().principal_for_user(user) if staff else NOBODY
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


def changelist_link(model: type[models.Model] | str, text: str, **filters: object) -> str:
    """A link to a changelist filtered by ``filters``. ``model`` may be an ``"app_label.model"`` label, so that an
    app can link to the admin of an app above it without importing it."""
    app_label, model_name = (
        model.split(".") if isinstance(model, str) else (model._meta.app_label, model._meta.model_name)
    )
    url = reverse(f"admin:{app_label}_{model_name.lower()}_changelist")
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
    """Scopes a model admin (or inline) to what the admin user's Gofer roles allow, through ``kernel.scope`` only.

    The rows are scoped by the model's declared ``tenancy`` (kernel/scope.py); declare ``scope_resources``, the
    resources the API requires besides the namespace and pipeline (``runs``, ``configs``...). Rows are read-only by
    default: admins that change something through a service override ``has_add/change/delete_permission`` with
    ``allowed(...)``. ``scope_admin_writes`` makes every change admin-only (events: only admins delete them).
    """

    scope_resources: ClassVar[tuple[str, ...]] = ()
    scope_admin_writes: ClassVar[bool] = False

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
        if action != Action.READ and self.scope_admin_writes and not principal.is_admin:
            return queryset.none()
        resources = self.scope_resources if resources is None else resources
        return tenancy.restrict(queryset, principal, action, resources)

    def may(
        self, request: HttpRequest, action: str, resources: tuple[str, ...] | None = None, *, admin: bool = False
    ) -> bool:
        """Whether the principal's roles grant ``action`` on this kind of row at all (in some namespace)."""
        principal = principal_of(request)
        if principal.superuser:
            return True
        resources = self.scope_resources if resources is None else resources
        admin = admin or (self.scope_admin_writes and action != Action.READ)
        if admin and not principal.is_admin:
            return False
        declared = tenancy.tenancy_of(self.model)
        needed = [Resource.NAMESPACES, *resources]
        if declared.pipeline is not None and not declared.pipeline_optional:
            needed.append(Resource.PIPELINES)
        return tenancy.grants_anywhere(principal, action, needed)

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
        related = db_field.related_model
        if not principal.superuser and isinstance(getattr(related, "tenancy", None), tenancy.Tenancy):
            # Choices of a namespace or pipeline are those the user may write in, as the API would allow.
            kwargs["queryset"] = tenancy.restrict(
                related._default_manager.all(), principal, Action.WRITE, self.scope_resources
            )
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
