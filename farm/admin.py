"""Django admin for ops: registry editing; lifecycle fields are read-only and the lifecycle
actions go through the same services as the UI, the API and the CLI."""

from django.contrib import admin, messages

from farm import publishing
from farm import services as registry
from farm.config import Block
from farm.errors import ServiceError
from farm.models import AuditEvent, ConfigLayer, Family, ReservedName, Tag, Wiki
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


@admin.register(Family)
class FamilyAdmin(OpsAdmin):
    list_display = ("name", "database_pattern", "description")
    search_fields = ("name",)

    def get_readonly_fields(self, request, obj=None):
        # Existing wikis derived their database names from the pattern: it never changes.
        return ("database_pattern",) if obj else ()


@admin.register(Tag)
class TagAdmin(OpsAdmin):
    list_display = ("name", "priority", "description")
    search_fields = ("name",)

    def get_readonly_fields(self, request, obj=None):
        # Config blocks and dblists name the tag: renaming it would orphan them.
        return ("name",) if obj else ()

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "priority" in form.changed_data:
            # The priority orders the tag layers of its wikis' settings.
            publishing.mark_block(Block(ConfigLayer.TAG, obj.name))


@admin.register(ReservedName)
class ReservedNameAdmin(OpsAdmin):
    list_display = ("name", "reason")
    search_fields = ("name",)


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
class WikiAdmin(OpsAdmin):
    list_display = ("id", "sitename", "family", "state", "read_only", "cluster", "created_at")
    list_filter = ("state", "family", "tags", "legal_hold")
    search_fields = ("id", "sitename")
    # The language is a setting (wgLanguageCode) and the legal hold has its own service.
    readonly_fields = (*LIFECYCLE_FIELDS, "language", "legal_hold")
    filter_horizontal = ("tags", "owners")
    actions = (close_wikis, reopen_wikis, archive_wikis, purge_archived_wikis)

    def save_model(self, request, obj, form, change):
        """Nothing here: save_related writes the edit through the service, in one go."""

    def save_related(self, request, form, formsets, change):
        # Through the registry service, like the API, the UI and the CLI: validated,
        # audited, and what MediaWiki reads for the wiki is marked for publishing.
        data = form.cleaned_data
        try:
            registry.wiki_update(
                actor=request.user,
                wiki_id=form.instance.pk,
                sitename=data["sitename"],
                owners=[user.get_username() for user in data["owners"]],
                tags=[tag.name for tag in data["tags"]],
            )
        except ServiceError as exc:
            self.message_user(request, f"{form.instance.pk}: {exc.message}", messages.ERROR)

    def has_add_permission(self, request):
        return False  # wikis are created through the create operation, never by hand

    def has_delete_permission(self, request, obj=None):
        return False  # wikis are purged through the purge operation, never deleted by hand


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
