"""Invitations (team admins), accounts and the host-credentials grant (superusers)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from tasks_app.forms.people import HostCredentialsForm, InvitationAcceptForm, UserCreateForm
from tasks_app.identity.actor import actor_for
from tasks_app.models import Team, TrustRule
from tasks_app.policy.access import require_superuser
from tasks_app.services.people import (
    InvitationInvalid,
    PeopleError,
    invitation_accept,
    invitation_accept_new_account,
    invitation_addressee_refusal,
    invitation_for_code,
    team_host_credentials_set,
    user_activate,
    user_create,
    user_deactivate,
    user_password_reset,
    user_superuser_set,
)
from tasks_app.services.workload import trust_rule_enable
from tasks_app.views.confirm import confirm_page

# The new one-time password is shown on the next page only, then gone from the session.
SESSION_NEW_PASSWORD = "new_one_time_password"  # noqa: S105 - a session key name


def _require_superuser(request) -> None:
    require_superuser(request.user, "Only portal administrators manage accounts and grants.")


@login_not_required
@sensitive_post_parameters("password1", "password2")
@csrf_protect
@never_cache
def invitation_accept_view(request, code):
    try:
        invitation = invitation_for_code(code)
    except InvitationInvalid as e:
        return render(request, "accounts/invitation_invalid.html", {"reason": str(e)}, status=410)
    actor = actor_for(request)
    if request.user.is_authenticated:
        if request.method == "POST":
            try:
                invitation_accept(invitation=invitation, actor=actor)
            except PeopleError as e:
                messages.error(request, str(e))
                return redirect("team_list")
            messages.success(request, f"You joined {invitation.team.name}.")
            return redirect("team_detail", team_id=invitation.team_id)
        refusal = invitation_addressee_refusal(invitation, request.user)
        return render(
            request,
            "accounts/invitation.html",
            {"invitation": invitation, "refusal": refusal},
            status=403 if refusal else 200,
        )

    User = get_user_model()
    has_account = User.objects.filter(email__iexact=invitation.email.strip()).exists()
    form = InvitationAcceptForm(request.POST or None, initial={"username": ""})
    if request.method == "POST" and form.is_valid():
        try:
            membership = invitation_accept_new_account(
                invitation=invitation,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                actor=actor,
            )
        except ValidationError as e:
            form.add_error("password1", e.messages)
        except InvitationInvalid as e:
            return render(
                request, "accounts/invitation_invalid.html", {"reason": str(e)}, status=410
            )
        except PeopleError as e:
            form.add_error("username" if settings.LOCAL_PASSWORDS else None, str(e))
        else:
            login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome! You joined {invitation.team.name}.")
            return redirect("team_detail", team_id=invitation.team_id)
    context = {"invitation": invitation, "form": form, "has_account": has_account}
    return render(request, "accounts/invitation.html", context, status=400 if form.errors else 200)


def user_list(request):
    _require_superuser(request)
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = user_create(actor=actor_for(request), **form.cleaned_data)
        except PeopleError as e:
            form.add_error("username", str(e))
        else:
            request.session[SESSION_NEW_PASSWORD] = [
                created.user.get_username(),
                created.one_time_password,
            ]
            return redirect("user_password_shown")
    User = get_user_model()
    query = request.GET.get("q", "").strip()
    users = User.objects.annotate(team_count=Count("memberships")).order_by("username")
    if query:
        users = users.filter(Q(username__icontains=query) | Q(email__icontains=query))
    disabled_rules = (
        TrustRule.objects.filter(disabled_at__isnull=False)
        .select_related("plan__team", "issuer", "job")
        .order_by("-disabled_at")[:200]
    )
    context = {
        "users": users[:500],
        "form": form,
        "query": query,
        "disabled_rules": disabled_rules,
    }
    return render(request, "people/users.html", context, status=400 if form.errors else 200)


@require_POST
def trust_rule_enable_view(request, rule_id):
    """A portal administrator enables a trust rule disabled with its author's account."""
    _require_superuser(request)
    rule = get_object_or_404(TrustRule.objects.select_related("plan__team"), id=rule_id)
    try:
        trust_rule_enable(rule=rule, actor=actor_for(request))
    except ValidationError as e:
        messages.error(request, f"The rule {rule.name} stays disabled: " + " ".join(e.messages))
    else:
        messages.success(
            request, f"Enabled the trust rule {rule.name} of {rule.plan.key}; it is yours now."
        )
    return redirect("user_list")


@never_cache
def user_password_shown(request):
    """The one-time password, once: it leaves the session as it is shown."""
    _require_superuser(request)
    shown = request.session.pop(SESSION_NEW_PASSWORD, None)
    if not shown:
        messages.info(request, "That one-time password has been shown already.")
        return redirect("user_list")
    username, password = shown
    return render(
        request, "people/password_shown.html", {"username": username, "password": password}
    )


def _get_user(user_id):
    return get_object_or_404(get_user_model(), pk=user_id)


# The actions that take something away ask once first (views/confirm.py): what to ask.
USER_ACTION_QUESTIONS = {
    "deactivate": (
        "Deactivate",
        "{name}",
        "They are signed out everywhere; their API tokens are revoked, their invitations "
        "withdrawn and their trust rules disabled. You can reactivate the account later; "
        "revoked tokens stay revoked.",
    ),
    "withdraw-superuser": (
        "Withdraw",
        "administrator from {name}",
        "They keep their teams but no longer manage accounts, grants, issuers or the portal.",
    ),
    "reset-password": (
        "Reset",
        "the password of {name}",
        "Their password stops working at once; you are shown a one-time password to give "
        "them, which they change at the next sign-in.",
    ),
}


@require_http_methods(["GET", "POST"])
def user_action(request, user_id, action):
    _require_superuser(request)
    user = _get_user(user_id)
    name = user.get_username()
    if request.method != "POST":
        if action not in USER_ACTION_QUESTIONS:
            return HttpResponseNotAllowed(["POST"])
        verb, what, consequence = USER_ACTION_QUESTIONS[action]
        return confirm_page(
            request,
            verb=verb,
            what=what.format(name=name),
            consequence=consequence,
            cancel=reverse("user_list"),
        )
    actor = actor_for(request)
    try:
        if action == "deactivate":
            done = user_deactivate(user=user, actor=actor)
            messages.success(
                request,
                f"Deactivated {name}: signed out everywhere"
                + (f", {done.tokens} API token(s) revoked" if done.tokens else "")
                + (f", {done.invitations} invitation(s) withdrawn" if done.invitations else "")
                + (f", {done.trust_rules} trust rule(s) disabled" if done.trust_rules else "")
                + ".",
            )
        elif action == "activate":
            user_activate(user=user, actor=actor)
            messages.success(request, f"Reactivated {name}.")
        elif action == "reset-password":
            reset = user_password_reset(user=user, actor=actor)
            request.session[SESSION_NEW_PASSWORD] = [name, reset.one_time_password]
            return redirect("user_password_shown")
        elif action in ("grant-superuser", "withdraw-superuser"):
            granted = action == "grant-superuser"
            user_superuser_set(user=user, superuser=granted, actor=actor)
            messages.success(
                request,
                f"{name} is {'now' if granted else 'no longer'} a portal administrator.",
            )
        else:
            raise PermissionDenied("Unknown action.")
    except PeopleError as e:
        messages.error(request, str(e))
    return redirect("user_list")


def host_credentials_withdraw(request, team_id):
    """Withdraw a team's grant of the host's identity, once asked (views/confirm.py)."""
    _require_superuser(request)
    team = get_object_or_404(Team, id=team_id)
    if request.method != "POST":
        return confirm_page(
            request,
            verb="Withdraw",
            what=f"the host's AWS identity from {team.name}",
            consequence="Its connectors and tasks that use the host's identity stop at once: "
            "runs, scheduled refreshes and Test connection. You can grant it again later.",
            cancel=reverse("host_credentials"),
        )
    if team_host_credentials_set(team=team, allowed=False, actor=actor_for(request)):
        messages.success(request, f"Withdrew the host's AWS identity for {team.name}.")
    return redirect("host_credentials")


def host_credentials(request):
    """Which teams may use the portal host's own AWS identity; grant and withdraw."""
    _require_superuser(request)
    form = HostCredentialsForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            team, allowed = form.cleaned_data["team"], form.cleaned_data["allowed"]
            if team_host_credentials_set(team=team, allowed=allowed, actor=actor_for(request)):
                verb = "Granted" if allowed else "Withdrew"
                messages.success(request, f"{verb} the host's AWS identity for {team.name}.")
        else:
            messages.error(request, "Choose a team that exists.")
        return redirect("host_credentials")
    teams = Team.objects.annotate(
        host_connectors=Count("connectors", filter=Q(connectors__credentials="host"))
    ).order_by("-host_credentials_allowed", "name")
    context = {"teams": teams, "setting_on": settings.ALLOW_HOST_CREDENTIALS}
    return render(request, "people/host_credentials.html", context)
