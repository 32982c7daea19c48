"""Django admin for ops: registry editing; lifecycle fields are read-only and the lifecycle
actions go through the same services as the UI, the API and the CLI."""

from datetime import datetime

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import models, transaction
from django.db.models import QuerySet

from farm import services as registry
from farm.errors import ServiceError
from farm.models import AuditEvent, Family, ReservedName, Tag, Wiki
from farm.roles import is_ops
from provisioning import services


class OpsAdmin(admin.ModelAdmin):
    """The admin is the ops role's: members of the `ops` group (from OIDC or local) may use
    it without per-model Django permissions; everyone else sees nothing in it."""

    def has_module_permission(self, request):
        return is_ops(request.user)

    def has_view_permission(self, request, obj=None):
        return is_ops(request.user)

    def has_change_permission(self, request, obj=None):
        return is_ops(request.user)

    def has_add_permission(self, request):
        return is_ops(request.user)

    def has_delete_permission(self, request, obj=None):
        return is_ops(request.user)


LIFECYCLE_FIELDS = (
    "id",
    "family",
    "state",
    "read_only",
    "database_name",
    "storage_prefix",
    "cluster",
    "created_by",
    "created_at",
    "activated_at",
    "archived_at",
    "purged_at",
    "purge_after",
    "current_archive_id",
    "archive_manifest",
    "purge_receipt",
    "closed_reason",
    "offline",
    "export_serial",
    "export_dirty_since",
)


class ServiceAdmin(OpsAdmin):
    """Every write goes through a registry service (validated, audited, exports marked):
    `save_through(request, form, change)` calls it and returns the saved object. A refusal
    is shown on the form's page and nothing is saved."""

    def save_through(self, request, form, change):
        raise NotImplementedError

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        admin_site = self

        class ThroughService(form_class):
            def _post_clean(self):
                # The service decides, instead of the model's own save: its refusal is a
                # form error beside the field it names.
                super()._post_clean()
                if self.errors:
                    return
                try:
                    with transaction.atomic():
                        self.saved = admin_site.save_through(request, self, change)
                except ServiceError as exc:
                    field = exc.field if exc.field in self.fields else None
                    self.add_error(field, exc.message)

        return ThroughService

    def save_model(self, request, obj, form, change):
        obj.pk = form.saved.pk  # for the admin's redirect and its log entry

    def save_related(self, request, form, formsets, change):
        """Nothing here: the service saved it all."""


@admin.register(Family)
class FamilyAdmin(ServiceAdmin):
    list_display = ("name", "database_pattern", "description")
    search_fields = ("name",)

    def get_readonly_fields(self, request, obj=None):
        # Existing wikis derived their database names from the pattern: it never changes.
        return ("name", "database_pattern") if obj else ()

    def has_delete_permission(self, request, obj=None):
        return False  # its wikis keep it; an unused family stays harmless

    def save_through(self, request, form, change):
        data = form.cleaned_data
        if change:
            return registry.family_update(
                actor=request.user, name=form.instance.name, description=data["description"]
            )
        return registry.family_create(
            actor=request.user,
            name=data["name"],
            database_pattern=data["database_pattern"],
            description=data["description"],
        )


@admin.register(Tag)
class TagAdmin(ServiceAdmin):
    list_display = ("name", "priority", "description")
    search_fields = ("name",)

    def get_readonly_fields(self, request, obj=None):
        # Config blocks and dblists name the tag: renaming it would orphan them.
        return ("name",) if obj else ()

    def has_delete_permission(self, request, obj=None):
        return False  # config blocks and wikis name it: take it off the wikis instead

    def save_through(self, request, form, change):
        data = form.cleaned_data
        if change:
            return registry.tag_update(
                actor=request.user,
                name=form.instance.name,
                priority=data["priority"],
                description=data["description"],
            )
        return registry.tag_create(
            actor=request.user,
            name=data["name"],
            priority=data["priority"],
            description=data["description"],
        )


@admin.register(ReservedName)
class ReservedNameAdmin(ServiceAdmin):
    list_display = ("name", "reason")
    search_fields = ("name",)

    def get_readonly_fields(self, request, obj=None):
        return ("name", "reason") if obj else ()

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def save_through(self, request, form, change):
        data = form.cleaned_data
        return registry.reserved_name_add(
            actor=request.user, name=data["name"], reason=data["reason"]
        )

    def delete_model(self, request, obj):
        registry.reserved_name_remove(actor=request.user, name=obj.name)

    def delete_queryset(self, request, queryset):
        for reserved in queryset:
            registry.reserved_name_remove(actor=request.user, name=reserved.name)


def _run_service(modeladmin, request, queryset, label, call):
    for wiki in queryset:
        try:
            operation = call(wiki)
        except ServiceError as exc:
            modeladmin.message_user(request, f"{wiki.id}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{wiki.id}: {label} operation {operation.pk} started")


@admin.action(description="Archive the selected wikis")
def archive_wikis(modeladmin, request, queryset):
    _run_service(
        modeladmin,
        request,
        queryset,
        "archive",
        lambda wiki: services.wiki_archive(actor=request.user, wiki_id=wiki.id),
    )


@admin.action(description="Close the selected wikis (read-only, still served)")
def close_wikis(modeladmin, request, queryset):
    reason = f"Closed by {request.user.get_username()}."
    _run_service(
        modeladmin,
        request,
        queryset,
        "close",
        lambda wiki: services.wiki_close(actor=request.user, wiki_id=wiki.id, reason=reason),
    )


@admin.action(description="Reopen the selected closed wikis")
def reopen_wikis(modeladmin, request, queryset):
    _run_service(
        modeladmin,
        request,
        queryset,
        "reopen",
        lambda wiki: services.wiki_reopen(actor=request.user, wiki_id=wiki.id),
    )


@admin.action(description="Purge the selected archived wikis (cannot be undone)")
def purge_archived_wikis(modeladmin, request, queryset):
    _run_service(
        modeladmin,
        request,
        queryset,
        "purge",
        lambda wiki: services.wiki_purge(actor=request.user, wiki_id=wiki.id),
    )


@admin.register(Wiki)
class WikiAdmin(ServiceAdmin):
    list_display = ("id", "sitename", "family", "state", "read_only", "cluster", "created_at")
    list_filter = ("state", "family", "tags", "legal_hold")
    search_fields = ("id", "sitename")
    # The language is a setting (wgLanguageCode) and the legal hold has its own service.
    readonly_fields = (*LIFECYCLE_FIELDS, "language", "legal_hold", "size_class", "cloned_from")
    filter_horizontal = ("tags", "owners")
    actions = (close_wikis, reopen_wikis, archive_wikis, purge_archived_wikis)

    def has_add_permission(self, request):
        return False  # wikis are created through the create operation, never by hand

    def has_delete_permission(self, request, obj=None):
        return False  # wikis are purged through the purge operation, never deleted by hand

    def save_through(self, request, form, change):
        data = form.cleaned_data
        return registry.wiki_update(
            actor=request.user,
            wiki_id=form.instance.pk,
            sitename=data["sitename"],
            owners=[user.get_username() for user in data["owners"]],
            tags=[tag.name for tag in data["tags"]],
        )


@admin.register(AuditEvent)
class AuditEventAdmin(OpsAdmin):
    list_display = ("created_at", "actor_name", "action", "target_type", "target_id")
    list_filter = ("action", "target_type")
    search_fields = ("target_id", "actor_name", "action")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Django's own users and groups -------------------------------------------------------

SECRET_FIELDS = {"password", "password1", "password2", "usable_password"}


def _audit_value(value):
    """A form value as the audit log keeps it: names for related objects, ISO times."""
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, QuerySet | list | tuple | set):
        return sorted(str(item) for item in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _form_changes(form) -> tuple[dict, dict]:
    before, after = {}, {}
    for name in form.changed_data:
        old, new = _audit_value(form[name].initial), _audit_value(form.cleaned_data.get(name))
        # Django's split date-time fields count a dropped microsecond as a change.
        if name not in SECRET_FIELDS and old != new:
            before[name], after[name] = old, new
    if SECRET_FIELDS & set(form.changed_data):
        after["password"] = "changed"  # noqa: S105 - that it changed, never the value
    return before, after


class AuditedAuthAdmin:
    """Django's user and group admin keep their own forms (password hashing, permissions):
    each of their saves is recorded through `auth_admin_record`, in the admin's own
    transaction. Roles are groups, so a role given here is in the audit log."""

    audit_name: str  # the events' prefix: user.create, group.update, ...
    audit_name_field = "name"  # the field that names one in a create or delete event

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        before, after = _form_changes(form)
        if not change:
            before, after = {}, {**after, self.audit_name_field: str(form.instance)}
        if after:
            registry.auth_admin_record(
                actor=request.user,
                target=form.instance,
                action=f"{self.audit_name}.{'update' if change else 'create'}",
                before=before or None,
                after=after,
            )

    def delete_model(self, request, obj):
        self._record_deletion(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self._record_deletion(request, obj)
        super().delete_queryset(request, queryset)

    def _record_deletion(self, request, obj) -> None:
        registry.auth_admin_record(
            actor=request.user,
            target=obj,
            action=f"{self.audit_name}.delete",
            before={self.audit_name_field: str(obj)},
        )


class AuditedUserAdmin(AuditedAuthAdmin, UserAdmin):
    audit_name = "user"
    audit_name_field = "username"

    def user_change_password(self, request, id, form_url=""):
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                user = self.get_object(request, id)
                registry.auth_admin_record(
                    actor=request.user,
                    target=user,
                    action="user.password_change",
                    after={"password": "changed"},
                )
        return response


class AuditedGroupAdmin(AuditedAuthAdmin, GroupAdmin):
    audit_name = "group"


for _model, _admin in ((User, AuditedUserAdmin), (Group, AuditedGroupAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)
