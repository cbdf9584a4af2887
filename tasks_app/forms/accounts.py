"""Signing in with a password."""

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm

from tasks_app.forms.base import (
    minutes_phrase,
)
from tasks_app.identity.actor import actor_for
from tasks_app.services.logins import login_retry_after, password_sign_in_allowed


class LoginForm(AuthenticationForm):
    """Django's sign-in form, refusing early when the account or address is throttled.

    It records nothing: `failure` says why it refused ("throttled", "invalid" or None),
    for the view to record the attempt (services/logins.py).
    """

    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": "Too many failed sign-in attempts. Try again in %(wait)s.",
        "sso_only": "Passwords are turned off on this portal: sign in with %(name)s.",
    }
    failure: str | None = None

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        password = self.cleaned_data.get("password")
        if username and not password_sign_in_allowed(username):
            # Decided before any password check: says nothing about the password.
            self.failure = "sso_only"
            raise forms.ValidationError(
                self.error_messages["sso_only"],
                code="sso_only",
                params={"name": settings.OIDC_NAME},
            )
        if username and password:
            assert self.request is not None  # the sign-in view always passes it
            wait = login_retry_after(actor=actor_for(self.request), username=username)
            if wait is not None:
                self.failure = "throttled"
                raise forms.ValidationError(
                    self.error_messages["throttled"],
                    code="throttled",
                    params={"wait": minutes_phrase(wait)},
                )
        try:
            cleaned = super().clean()
        except forms.ValidationError as e:
            if username and password and e.code == "invalid_login":
                self.failure = "invalid"
            raise
        user = self.get_user()
        if user is not None and not settings.LOCAL_PASSWORDS and not user.is_superuser:
            # A break-glass name that is not (or no longer) a portal administrator.
            self.failure = "sso_only"
            raise forms.ValidationError(
                self.error_messages["sso_only"],
                code="sso_only",
                params={"name": settings.OIDC_NAME},
            )
        return cleaned
