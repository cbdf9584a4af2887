from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse

from tasks_app.models import (
    ApiToken,
    AuditEvent,
    CanaryPing,
    Connector,
    Job,
    Membership,
    NotificationDelivery,
    Plan,
    Profile,
    TaskConfig,
    TaskRun,
    TaskStatusChange,
    Team,
    Variable,
    VariableResult,
)


@login_not_required
def _admin_login(request, extra_context=None):
    """The admin signs in through the portal's form, which throttles failed attempts."""
    next_url = request.GET.get("next") or reverse("admin:index")
    return redirect_to_login(next_url, settings.LOGIN_URL)


admin.site.login = _admin_login
admin.site.site_header = "ECR Portal administration"
admin.site.site_title = "ECR Portal"


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "host_credentials_allowed", "created"]
    list_filter = ["host_credentials_allowed"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    """The secret access key has no form field: it is neither shown nor overwritten here."""

    list_display = ["name", "team", "credentials", "principal_type", "partition", "last_test_ok"]
    list_filter = ["credentials", "principal_type", "partition"]
    list_select_related = ["team"]
    search_fields = ["name", "team__name", "access_key_id", "role_arn"]
    filter_horizontal = ["shared_with"]
    readonly_fields = ["created", "updated", "created_by", "last_test_at", "last_test_ok"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "created"]
    list_filter = ["role", "team"]
    list_select_related = ["user", "team"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "must_change_password"]
    list_select_related = ["user"]
    search_fields = ["user__username"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created", "action", "actor_name", "team", "address", "summary"]
    list_filter = ["action"]
    list_select_related = ["team"]
    search_fields = ["actor_name", "summary", "object_id"]
    date_hierarchy = "created"

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CanaryPing)
class CanaryPingAdmin(ReadOnlyAdmin):
    list_display = ["id", "created", "answered_at", "answered_by"]


class JobInline(admin.TabularInline):
    model = Job
    extra = 0


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "team", "created"]
    list_select_related = ["team"]
    search_fields = ["key", "name"]
    inlines = [JobInline]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "plan", "stage"]
    list_select_related = ["plan"]
    search_fields = ["key", "name", "plan__key"]


@admin.register(Variable)
class VariableAdmin(admin.ModelAdmin):
    """Masked values are encrypted and have no form field here."""

    list_display = ["key", "team", "plan", "masked"]
    list_select_related = ["team", "plan"]
    search_fields = ["key"]


@admin.register(TaskConfig)
class TaskConfigAdmin(admin.ModelAdmin):
    list_display = ["__str__", "job", "namespace", "scope", "enabled", "expires_at", "last_run_ok"]
    list_filter = ["enabled", "scope", "credentials_source"]
    list_select_related = ["job__plan"]
    readonly_fields = [
        "expires_at",
        "last_run_at",
        "last_run_ok",
        "last_error",
        "recorded_status",
        "refresh_due_at",
        "lease_until",
        "failures",
    ]


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = ["started", "task", "trigger", "outcome", "error_class", "token_expires_at"]
    list_filter = ["outcome", "trigger"]
    list_select_related = ["task__job"]


@admin.register(VariableResult)
class VariableResultAdmin(ReadOnlyAdmin):
    list_display = ["key", "task", "scope", "masked", "expires_at"]
    list_filter = ["scope", "masked"]
    list_select_related = ["task__job"]


@admin.register(TaskStatusChange)
class TaskStatusChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "task", "previous", "status", "expires_at"]
    list_filter = ["status", "previous"]
    list_select_related = ["task__job"]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created", "team", "channel", "state", "attempts", "response_status"]
    list_filter = ["channel", "state"]
    list_select_related = ["team"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """The hash is left out; a token is revoked from its page (revoked at)."""

    list_display = ["name", "hint", "plan", "job", "created", "expires_at", "revoked_at"]
    list_select_related = ["plan", "job"]
    exclude = ["token_hash"]
    readonly_fields = [
        "hint",
        "team",
        "plan",
        "job",
        "created",
        "created_by",
        "last_used_at",
        "last_used_from",
    ]

    def has_add_permission(self, request):
        return False
