"""The first admin account, created at first start."""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model, password_validation
from django.db import transaction

from tasks_app.identity.actor import SYSTEM
from tasks_app.models import Profile
from tasks_app.services.audit import audit_record


@dataclass(frozen=True)
class FirstAdmin:
    username: str
    created: bool
    # Only set when the password was generated here and must be shown once.
    one_time_password: str | None = None


def one_time_password() -> str:
    # 16 characters of a 56-character alphabet without look-alikes: ~93 bits.
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


@transaction.atomic
def first_admin_ensure(*, username: str, email: str = "", password: str | None = None):
    """Create a superuser unless one exists.

    With ``password`` given, that password is used as it is (after Django's
    password validators). Without, a random one-time password is generated:
    it is returned once and must be changed at the first sign-in.
    """
    User = get_user_model()
    existing = User.objects.filter(is_superuser=True).order_by("date_joined").first()
    if existing is not None:
        return FirstAdmin(username=existing.get_username(), created=False)

    user = User(username=username, email=email, is_staff=True, is_superuser=True)
    if password is not None:
        # Raises ValidationError with the validators' messages.
        password_validation.validate_password(password, user)
    one_time = None if password is not None else one_time_password()
    user.set_password(password if password is not None else one_time)
    user.save()
    Profile.objects.create(user=user, must_change_password=one_time is not None)
    audit_record(
        action="admin.created",
        summary=f"Created the first admin account {username}",
        actor=SYSTEM,
        changes={"username": username, "one_time_password": one_time is not None},
    )
    return FirstAdmin(username=username, created=True, one_time_password=one_time)


class NotAdministrator(Exception):
    """The actor is not (or no longer) an active portal administrator."""


def administrators_locked(actor) -> set:
    """Lock the rows of the active portal administrators, in one order (two changes wait
    for each other, never deadlock), then check that the actor is still one of them; the
    set of their IDs. Every administrator's change starts here, inside its transaction: a
    request that began before its author was deactivated or demoted changes nothing."""
    user = actor.user
    if user is None or not user.is_superuser:
        raise NotAdministrator("Only portal administrators do this.")
    active = set(
        get_user_model()
        .objects.select_for_update()
        .filter(is_superuser=True, is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if user.pk not in active:
        raise NotAdministrator("Your account is no longer an active portal administrator.")
    return active
