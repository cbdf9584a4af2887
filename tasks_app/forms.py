from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Q

from tasks_app.models import Role, Team
from tasks_app.services.logins import login_failed, login_retry_after


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


class LoginForm(AuthenticationForm):
    """Django's sign-in form, refusing early when the account or address is throttled."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": "Too many failed sign-in attempts. Try again in %(wait)s.",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        password = self.cleaned_data.get("password")
        if username and password:
            wait = login_retry_after(request=self.request, username=username)
            if wait is not None:
                login_failed(request=self.request, username=username, throttled=True)
                raise forms.ValidationError(
                    self.error_messages["throttled"],
                    code="throttled",
                    params={"wait": _minutes(wait)},
                )
        try:
            return super().clean()
        except forms.ValidationError as e:
            if username and password and e.code == "invalid_login":
                login_failed(request=self.request, username=username)
            raise


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name", "slug"]
        help_texts = {
            "name": "Shown everywhere the team appears, e.g. Platform Engineering.",
            "slug": "Short identifier: lowercase letters, digits and hyphens.",
        }


class MemberAddForm(forms.Form):
    user = forms.CharField(
        label="Username or e-mail",
        max_length=254,
        help_text="The person needs an account on this portal already.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def clean_user(self):
        value = self.cleaned_data["user"].strip()
        users = get_user_model().objects.filter(
            Q(username__iexact=value) | Q(email__iexact=value), is_active=True
        )
        matches = list(users[:2])
        if not matches:
            raise forms.ValidationError(f"No active account is called {value!r}.")
        if len(matches) > 1:
            raise forms.ValidationError(
                f"Several accounts match {value!r}; give the exact username instead."
            )
        return matches[0]


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
