from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.timezone import now
from django.views.decorators.http import require_POST

from tasks_app.forms.people import InvitationForm
from tasks_app.forms.teams import MemberAddForm, MemberRoleForm, NotificationSettingsForm, TeamForm
from tasks_app.identity.actor import actor_for
from tasks_app.lib.crypto import EncryptionError
from tasks_app.lib.webhooks import WebhookError
from tasks_app.models import Invitation, Membership, NotificationDelivery, Role, Team
from tasks_app.policy.access import require_superuser, require_team_role, teams_for_user
from tasks_app.policy.loaders import team_for_user
from tasks_app.selectors import teams_with_member_count
from tasks_app.services.notifications import webhook_ping
from tasks_app.services.people import (
    PeopleError,
    invitation_create,
    invitation_link,
    invitation_revoke,
)
from tasks_app.services.teams import (
    TeamError,
    membership_add,
    membership_change_role,
    membership_remove,
    team_create,
    team_notifications_update,
    team_update,
)
from tasks_app.views.confirm import confirm_page

DELIVERIES_SHOWN = 50


def _get_membership(team: Team, membership_id) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user", "team"), id=membership_id, team=team
    )


def team_list(request):
    teams = teams_with_member_count(teams_for_user(request.user))
    return render(request, "teams/list.html", {"teams": teams})


def team_create_view(request):
    require_superuser(request.user, "Only portal administrators can create teams.")
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = team_create(
            name=form.cleaned_data["name"],
            slug=form.cleaned_data["slug"],
            actor=actor_for(request),
        )
        messages.success(request, f"Created team {team.name}. You are its admin.")
        return redirect("team_detail", team_id=team.id)
    return render(request, "teams/form.html", {"form": form, "team": None})


def team_edit(request, team_id):
    team, _ = team_for_user(request.user, team_id, need=Role.ADMIN)
    # The form edits its own copy, so that team_update sees what changed.
    form = TeamForm(request.POST or None, instance=Team.objects.get(id=team.id))
    if request.method == "POST" and form.is_valid():
        team_update(
            team=team,
            name=form.cleaned_data["name"],
            slug=form.cleaned_data["slug"],
            actor=actor_for(request),
        )
        messages.success(request, "Saved the team.")
        return redirect("team_detail", team_id=team.id)
    return render(request, "teams/form.html", {"form": form, "team": team})


def team_detail(request, team_id, add_form=None, invite_form=None):
    team, my_role = team_for_user(request.user, team_id)
    can_manage = my_role.allows(Role.ADMIN)
    memberships = team.memberships.select_related("user").order_by("user__username")
    invitations = []
    if can_manage:
        pending = Invitation.objects.filter(
            team=team, accepted_at=None, revoked_at=None, expires_at__gt=now()
        ).select_related("invited_by")
        invitations = [(i, invitation_link(i)) for i in pending]
    context = {
        "team": team,
        "my_role": my_role,
        "can_manage": can_manage,
        "memberships": memberships,
        "roles": Role.choices,
        "add_form": add_form or MemberAddForm(),
        "invite_form": invite_form or InvitationForm(prefix="invite"),
        "invitations": invitations,
        "email_enabled": settings.EMAIL_ENABLED,
    }
    failed = add_form is not None or invite_form is not None
    return render(request, "teams/detail.html", context, status=400 if failed else 200)


@require_POST
def invitation_create_view(request, team_id):
    team, _ = team_for_user(request.user, team_id, need=Role.ADMIN)
    form = InvitationForm(request.POST, prefix="invite")
    if form.is_valid():
        try:
            invitation = invitation_create(
                team=team,
                email=form.cleaned_data["email"],
                role=Role(form.cleaned_data["role"]),
                actor=actor_for(request),
            )
        except PeopleError as e:
            form.add_error("email", str(e))
        else:
            how = " and e-mailed them the link" if settings.EMAIL_ENABLED else ""
            messages.success(
                request,
                f"Invited {invitation.email}{how}. The link is under Pending invitations, "
                "to copy and send yourself.",
            )
            return redirect("team_detail", team_id=team.id)
    return team_detail(request, team.id, invite_form=form)


def invitation_revoke_view(request, team_id, invitation_id):
    team, _ = team_for_user(request.user, team_id, need=Role.ADMIN)
    invitation = get_object_or_404(
        Invitation.objects.select_related("team"), id=invitation_id, team=team
    )
    if request.method != "POST":
        return confirm_page(
            request,
            verb="Withdraw",
            what=f"the invitation of {invitation.email}",
            consequence="Its link stops working at once. You can invite them again later.",
            cancel=reverse("team_detail", args=[team.id]),
        )
    if invitation_revoke(invitation=invitation, actor=actor_for(request)):
        messages.success(request, f"Withdrew the invitation of {invitation.email}.")
    else:
        messages.info(request, "That invitation was no longer pending.")
    return redirect("team_detail", team_id=team.id)


@require_POST
def member_add(request, team_id):
    team, _ = team_for_user(request.user, team_id, need=Role.ADMIN)
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        return team_detail(request, team_id, add_form=form)
    user = form.cleaned_data["user"]
    try:
        membership_add(
            team=team, user=user, role=Role(form.cleaned_data["role"]), actor=actor_for(request)
        )
    except TeamError as e:
        form.add_error("user", str(e))
        return team_detail(request, team_id, add_form=form)
    messages.success(request, f"Added {user.get_username()} to {team.name}.")
    return redirect("team_detail", team_id=team.id)


@require_POST
def member_role(request, team_id, membership_id):
    team, _ = team_for_user(request.user, team_id, need=Role.ADMIN)
    membership = _get_membership(team, membership_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles viewer, editor or admin.")
        return redirect("team_detail", team_id=team.id)
    try:
        membership_change_role(
            membership=membership, role=Role(form.cleaned_data["role"]), actor=actor_for(request)
        )
    except TeamError as e:
        messages.error(request, str(e))
    else:
        messages.success(
            request, f"{membership.user.get_username()} is now {Role(membership.role).label}."
        )
    return redirect("team_detail", team_id=team.id)


def member_remove(request, team_id, membership_id):
    team, _ = team_for_user(request.user, team_id, need=Role.ADMIN)
    membership = _get_membership(team, membership_id)
    username = membership.user.get_username()
    if request.method != "POST":
        yourself = membership.user_id == request.user.id
        return confirm_page(
            request,
            verb="Remove",
            what=f"{'yourself' if yourself else username} from {team.name}",
            consequence=f"{'You' if yourself else username} no longer "
            f"{'see' if yourself else 'sees'} the team's plans, tasks and credentials. "
            + (
                "Another admin of the team can add you again."
                if yourself
                else "An admin can add them again."
            ),
            cancel=reverse("team_detail", args=[team.id]),
        )
    try:
        membership_remove(membership=membership, actor=actor_for(request))
    except TeamError as e:
        messages.error(request, str(e))
        return redirect("team_detail", team_id=team.id)
    messages.success(request, f"Removed {username} from {team.name}.")
    if membership.user_id == request.user.id and not request.user.is_superuser:
        return redirect("team_list")
    return redirect("team_detail", team_id=team.id)


def team_notifications(request, team_id):
    """Notification settings (admins) and the delivery log (every member)."""
    team, my_role = team_for_user(request.user, team_id)
    can_manage = my_role.allows(Role.ADMIN)
    form = NotificationSettingsForm(request.POST or None, team=team)
    if request.method == "POST":
        require_team_role(request.user, team, Role.ADMIN)
        if form.is_valid():
            team_notifications_update(team=team, actor=actor_for(request), **form.cleaned_data)
            messages.success(request, "Saved the notification settings.")
            return redirect("team_notifications", team_id=team.id)
    deliveries = (
        NotificationDelivery.objects.filter(team=team)
        .select_related("change__task__job__plan")
        .order_by("-created")[:DELIVERIES_SHOWN]
    )
    context = {
        "team": team,
        "can_manage": can_manage,
        "form": form,
        "deliveries": deliveries,
        "has_secret": bool(team.webhook_secret),
    }
    return render(request, "teams/notifications.html", context, status=400 if form.errors else 200)


@require_POST
def team_webhook_test(request, team_id):
    team, _ = team_for_user(request.user, team_id, need=Role.ADMIN)
    try:
        status = webhook_ping(team=team)
    except (WebhookError, EncryptionError) as e:
        messages.error(request, f"The test delivery failed: {getattr(e, 'message', e)}")
    else:
        messages.success(request, f"The webhook accepted a signed ping (HTTP {status}).")
    return redirect("team_notifications", team_id=team.id)
