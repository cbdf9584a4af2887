from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.urls import reverse

from tasks_app.identity.actor import actor_for
from tasks_app.lib import caches
from tasks_app.models import (
    ApiToken,
    AuditEvent,
    CallRate,
    CanaryPing,
    Connector,
    Credential,
    ExternalIdentity,
    Invitation,
    Job,
    Membership,
    NotificationDelivery,
    Plan,
    Profile,
    SigningKey,
    TaskConfig,
    TaskRun,
    TaskStatusChange,
    Team,
    TrustedIssuer,
    TrustRule,
    Variable,
)
from tasks_app.services.audit import audit_record


@login_not_required
def admin_login(request, extra_context=None):
    """The admin signs in through the portal's form, which throttles failed attempts.

    Someone signed in already, but not a portal administrator, gets a page that says so
    (sending them to sign in again would loop: the form sends them straight back).
    """
    next_url = request.GET.get("next") or reverse("admin:index")
    if admin.site.has_permission(request):
        return redirect(next_url if next_url.startswith("/admin/") else reverse("admin:index"))
    if request.user.is_authenticated:
        return render(request, "admin_forbidden.html", status=403)
    return redirect_to_login(next_url, settings.LOGIN_URL)


def admin_has_permission(request) -> bool:
    """Portal administrators only: staff flags or model permissions left from Django's user
    admin (before issue 22 made them read-only) open nothing here."""
    return request.user.is_active and request.user.is_superuser


admin.site.login = admin_login  # type: ignore[method-assign]
admin.site.has_permission = admin_has_permission  # type: ignore[method-assign]
admin.site.site_header = "ECR Portal administration"
admin.site.site_title = "ECR Portal"


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PortalManagedAdmin(ReadOnlyAdmin):
    """Shown here, changed only in the portal: its forms hold the rules (secrets, host
    credentials, scopes) and its services the audit trail, which a form here would bypass.
    """

    portal_url_name = ""

    def has_delete_permission(self, request, obj=None):
        return False

    def view_on_site(self, obj):
        return reverse(self.portal_url_name, args=[obj.pk])


class AuditedAdmin(admin.ModelAdmin):
    """Changes made here are audited like the portal's, with the fields that changed."""

    def _audit(self, request, obj, verb: str, changes: dict) -> None:
        name = obj._meta.model_name
        audit_record(
            action=f"admin.{name}.{verb}",
            summary=f"{verb.title()} {obj._meta.verbose_name} {obj} in the admin",
            actor=actor_for(request),
            team=audit_team(obj),
            obj=obj,
            changes=changes,
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        fields = form.changed_data if change else list(form.fields)
        values = {f: str(form.cleaned_data.get(f)) for f in fields if f in form.cleaned_data}
        self._audit(request, obj, "updated" if change else "created", values)

    def delete_model(self, request, obj):
        self._audit(request, obj, "deleted", {})
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        """The list's "Delete selected" action, audited object by object too."""
        for obj in queryset:
            self._audit(request, obj, "deleted", {})
        super().delete_queryset(request, queryset)

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            self._audit(request, obj, "created", {})
        for obj, fields in formset.changed_objects:
            self._audit(request, obj, "updated", {"fields": fields})
        for obj in formset.deleted_objects:
            self._audit(request, obj, "deleted", {})


def audit_team(obj) -> Team | None:
    if isinstance(obj, Team):
        return obj
    team = getattr(obj, "team", None)
    return team if isinstance(team, Team) else None


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    # Notifications are set on the team's page, where the webhook address is checked.
    fields = ["name", "slug", "host_credentials_allowed"]
    list_display = ["name", "slug", "host_credentials_allowed", "created"]
    list_filter = ["host_credentials_allowed"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]


@admin.register(Connector)
class ConnectorAdmin(PortalManagedAdmin):
    """The secret access key is neither shown nor changed here."""

    portal_url_name = "connector_detail"
    exclude = ["secret_access_key"]
    list_display = ["name", "team", "credentials", "principal_type", "partition", "last_test_ok"]
    list_filter = ["credentials", "principal_type", "partition"]
    list_select_related = ["team"]
    search_fields = ["name", "team__name", "access_key_id", "role_arn"]
    filter_horizontal = ["shared_with"]
    readonly_fields = ["created", "updated", "created_by", "last_test_at", "last_test_ok"]


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "team", "role", "created"]
    list_filter = ["role", "team"]
    list_select_related = ["user", "team"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]


@admin.register(Profile)
class ProfileAdmin(AuditedAdmin):
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

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Plan)
class PlanAdmin(PortalManagedAdmin):
    portal_url_name = "plan_detail"
    list_display = ["key", "name", "team", "created"]
    list_select_related = ["team"]
    search_fields = ["key", "name"]
    inlines = [JobInline]


@admin.register(Job)
class JobAdmin(PortalManagedAdmin):
    portal_url_name = "job_detail"
    list_display = ["key", "name", "plan", "stage"]
    list_select_related = ["plan"]
    search_fields = ["key", "name", "plan__key"]


@admin.register(Variable)
class VariableAdmin(PortalManagedAdmin):
    """Masked values are encrypted and not shown here."""

    portal_url_name = "variable_edit"
    exclude = ["secret_value"]
    list_display = ["key", "team", "plan", "masked"]
    list_select_related = ["team", "plan"]
    search_fields = ["key"]


@admin.register(TaskConfig)
class TaskConfigAdmin(PortalManagedAdmin):
    portal_url_name = "task_detail"
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


@admin.register(Credential)
class CredentialAdmin(ReadOnlyAdmin):
    """The token is encrypted and not shown here."""

    list_display = ["group", "expires_at", "proxy_endpoint", "created"]
    exclude = ["token"]


@admin.register(CallRate)
class CallRateAdmin(ReadOnlyAdmin):
    """The fleet's rate limits (services/pacing.py): AWS calls, failed sign-ins."""

    list_display = ["name", "next_at"]


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
class ApiTokenAdmin(PortalManagedAdmin):
    """The hash is left out; tokens are created and revoked in the portal, audited."""

    list_display = ["name", "hint", "plan", "job", "created", "expires_at", "revoked_at"]
    list_select_related = ["plan", "job"]
    exclude = ["token_hash"]

    def view_on_site(self, obj):
        return reverse("token_list")


@admin.register(Invitation)
class InvitationAdmin(PortalManagedAdmin):
    """Invitations are made and withdrawn on the team's page, audited; the link is not
    shown here (it is a bearer secret)."""

    list_display = ["email", "team", "role", "created", "expires_at", "accepted_at", "revoked_at"]
    list_select_related = ["team"]

    def view_on_site(self, obj):
        return reverse("team_detail", args=[obj.team_id])


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(ReadOnlyAdmin):
    """Links made at single sign-on; removing one makes the next sign-on link again."""

    list_display = ["user", "issuer", "subject", "created", "last_login"]
    list_select_related = ["user"]
    search_fields = ["user__username", "subject"]


class TrustAdmin(AuditedAdmin):
    """Issuers and trust rules: held to their models' rules (clean), made under the
    administrator's name, and in effect at once in this process (the others within
    ECRPORTAL_API_CACHE_SECONDS, as from the portal's pages)."""

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        caches.trust_clear()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        caches.trust_clear()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        caches.trust_clear()


@admin.register(TrustedIssuer)
class TrustedIssuerAdmin(TrustAdmin):
    """OIDC issuers whose ID tokens CI jobs may present (issue 17); audited. The portal's own
    issuer cannot be one (TrustedIssuer.clean)."""

    list_display = ["name", "issuer", "created"]
    search_fields = ["name", "issuer"]
    readonly_fields = ["created", "created_by"]


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    """The portal's ID-token signing keys, public parts only: made and rotated by
    `manage.py rotate_signing_keys`, never deleted here (AWS may still verify with them)."""

    list_display = ["kid", "algorithm", "created", "signs_from", "retires_at"]
    exclude = ["private_key"]

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TrustRule)
class TrustRuleAdmin(TrustAdmin):
    """Which ID tokens act as a token of a plan or job; audited. A rule disabled with its
    author's account is enabled again on the Users page, under the enabler's name."""

    list_display = ["name", "plan", "job", "issuer", "audience", "disabled_at"]
    list_select_related = ["plan", "job", "issuer"]
    readonly_fields = ["created", "created_by", "disabled_at", "disabled_reason"]


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class PortalUserAdmin(AuditedAdmin, UserAdmin):
    """People's names and addresses may be corrected here, audited. Whether an account is
    active or an administrator, and its password, change on the Users page only: its
    services revoke what acts in a deactivated person's name, keep the last administrator
    and audit it all, which a tick box here would go around. Accounts are made there too
    (or by invitation), and deactivated rather than deleted."""

    fieldsets = [
        (None, {"fields": ["username", "first_name", "last_name", "email"]}),
        (
            "Managed on the Users page",
            {"fields": ["is_active", "is_superuser", "is_staff", "last_login", "date_joined"]},
        ),
    ]
    readonly_fields = ["is_active", "is_staff", "is_superuser", "last_login", "date_joined"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [url for url in super().get_urls() if "password" not in str(url.pattern)]

    def view_on_site(self, obj):
        return reverse("user_list") + "?q=" + obj.get_username()
