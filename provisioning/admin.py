from django.contrib import admin, messages

from farm.admin import OpsAdmin
from farm.errors import ServiceError
from provisioning import services
from provisioning.models import Operation, UnarchiveRequest


@admin.action(description="Retry the selected failed operations")
def retry_operations(modeladmin, request, queryset):
    for operation in queryset:
        try:
            services.operation_retry(actor=request.user, operation_id=operation.pk)
        except ServiceError as exc:
            modeladmin.message_user(request, f"{operation.pk}: {exc.message}", messages.ERROR)


@admin.register(Operation)
class OperationAdmin(OpsAdmin):
    list_display = ("created_at", "wiki_ref", "kind", "state", "failed_step", "attempts", "actor")
    list_filter = ("kind", "state")
    search_fields = ("wiki_ref", "id")
    actions = (retry_operations,)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.action(description="Approve the selected unarchive requests")
def approve_requests(modeladmin, request, queryset):
    for unarchive in queryset:
        try:
            services.unarchive_approve(actor=request.user, request_id=unarchive.pk)
        except ServiceError as exc:
            modeladmin.message_user(
                request, f"request {unarchive.pk}: {exc.message}", messages.ERROR
            )


@admin.register(UnarchiveRequest)
class UnarchiveRequestAdmin(OpsAdmin):
    list_display = ("requested_at", "wiki", "state", "requested_by", "decided_by")
    list_filter = ("state",)
    actions = (approve_requests,)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
