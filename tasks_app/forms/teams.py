"""Teams, their members and their notification settings."""

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from tasks_app.models import Role, Team


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name", "slug"]
        help_texts = {
            "name": "Shown everywhere the team appears, e.g. Platform Engineering.",
            "slug": "Short identifier: lowercase letters, digits and hyphens.",
        }


class NotificationSettingsForm(forms.Form):
    """Where a team hears about status changes (SPEC §7)."""

    notify_email = forms.BooleanField(
        label="E-mail the team's admins",
        required=False,
        help_text="When a task starts failing, expires or recovers. Admins need an e-mail "
        "address on their account.",
    )
    webhook_url = forms.CharField(
        label="Webhook URL",
        required=False,
        max_length=2048,
        help_text="Receives a signed JSON POST for each change, e.g. "
        "https://hooks.example.com/ecr-portal. Must be https to a public address.",
    )
    webhook_secret = forms.CharField(
        label="Signing secret",
        required=False,
        min_length=16,
        max_length=256,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="At least 16 characters, used for the X-ECRPortal-Signature header "
        "(HMAC-SHA256). Leave empty to keep the current secret.",
    )

    def __init__(self, *args, team: Team, **kwargs):
        self.team = team
        kwargs.setdefault(
            "initial", {"notify_email": team.notify_email, "webhook_url": team.webhook_url}
        )
        super().__init__(*args, **kwargs)

    def clean_webhook_url(self):
        from tasks_app.lib.webhooks import WebhookError, webhook_target

        url = self.cleaned_data["webhook_url"].strip()
        if url:
            try:
                webhook_target(url)
            except WebhookError as e:
                raise forms.ValidationError(e.message) from None
        return url

    def clean(self):
        super().clean()
        data = self.cleaned_data
        needs_secret = data.get("webhook_url") and not self.team.webhook_secret
        if needs_secret and not data.get("webhook_secret") and "webhook_secret" not in self.errors:
            self.add_error("webhook_secret", "Enter a signing secret for the signatures.")
        return data


class MemberAddForm(forms.Form):
    user = forms.CharField(
        label="Username or e-mail",
        max_length=254,
        help_text="Their username or e-mail on this portal. No account yet? Invite them instead.",
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
