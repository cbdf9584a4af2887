from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Q

from tasks_app.models import Connector, Role, Team
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


class ConnectorForm(forms.ModelForm):
    """Create or edit a connector. The secret access key is write-only."""

    owner = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        label="Owner team",
        help_text="Admins of this team manage the connector.",
    )
    secret_access_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted and never shown again.",
    )
    shared_with = forms.ModelMultipleChoiceField(
        queryset=Team.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Share with teams",
        help_text="Editors and admins of these teams may use the connector in their tasks; "
        "they cannot see or change its settings.",
    )

    class Meta:
        model = Connector
        fields = [
            "name",
            "partition",
            "credentials",
            "access_key_id",
            "secret_access_key",
            "principal_type",
            "role_arn",
            "external_id",
            "set_source_identity",
            "session_duration",
            "session_policy",
            "shared_with",
            "unattended_use",
        ]
        labels = {
            "credentials": "AWS credentials",
            "access_key_id": "Access key ID",
            "principal_type": "Principal",
            "role_arn": "Role ARN",
            "external_id": "External ID",
            "set_source_identity": "Set SourceIdentity",
            "session_duration": "Session duration (seconds)",
            "unattended_use": "Allow unattended use",
        }
        help_texts = {
            "name": "Unique within the owner team, e.g. production-ecr-push.",
            "partition": "The AWS partition of the account.",
            "credentials": "An IAM user's access key, or the portal host's own identity.",
            "access_key_id": "20 characters starting with AKIA, e.g. AKIAIOSFODNN7EXAMPLE.",
            "principal_type": "Use the credentials as they are, or obtain temporary credentials "
            "from AWS STS with them.",
            "role_arn": "The role to assume, e.g. arn:aws:iam::123456789012:role/ecr-push.",
            "external_id": "Optional, 2 to 1224 characters, if the role's trust policy asks "
            "for one.",
            "set_source_identity": "Pass the user name as SourceIdentity. The role's trust "
            "policy must allow sts:SetSourceIdentity.",
            "session_duration": "Empty for the default: 3600 for roles, 43200 for federated "
            "users and session tokens.",
            "session_policy": "Optional IAM policy JSON (at most 2048 characters without white "
            "space) that narrows the temporary credentials. For federated users, without one "
            "the AWS managed policy AmazonEC2ContainerRegistryPowerUser applies.",
            "unattended_use": "Scheduled refreshes and API tokens may use this connector.",
        }
        widgets = {"session_policy": forms.Textarea(attrs={"rows": 6, "spellcheck": "false"})}

    def __init__(self, *args, owners, host_allowed: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.creating = self.instance._state.adding
        self.secret_changed = False
        if self.creating:
            self.fields["owner"].queryset = owners
            only_owner = owners.first() if owners.count() == 1 else None
            self.fields["owner"].initial = only_owner
            owner_id = only_owner.id if only_owner else None
        else:
            del self.fields["owner"]
            keep = "Stored encrypted. Leave empty to keep the stored secret."
            self.fields["secret_access_key"].help_text = keep
            owner_id = self.instance.team_id
        self.fields["shared_with"].queryset = Team.objects.exclude(id=owner_id).order_by("name")
        if not host_allowed:
            self.fields["credentials"].choices = [
                c for c in self.fields["credentials"].choices if c[0] != Connector.Credentials.HOST
            ]

    def clean_secret_access_key(self):
        value = self.cleaned_data["secret_access_key"]
        if not value and not self.creating:
            return self.instance.secret_access_key  # keep what is stored
        self.secret_changed = bool(value)
        return value

    def clean(self):
        cleaned = super().clean()
        team = cleaned.get("owner") if self.creating else self.instance.team
        if team is not None:
            # Model validation (and the host-credentials rule) needs the owner.
            self.instance.team = team
            name = cleaned.get("name")
            taken = Connector.objects.filter(team=team, name=name).exclude(pk=self.instance.pk)
            if name and taken.exists():
                self.add_error("name", f"{team.name} already has a connector called {name}.")
            shared = cleaned.get("shared_with") or []
            if team in shared:
                self.add_error("shared_with", "The owner team uses the connector anyway.")
        return cleaned


class ConnectorTestForm(forms.Form):
    region = forms.ChoiceField(help_text="Where to call ecr:GetAuthorizationToken.")

    def __init__(self, *args, regions: list[str], initial_region: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [(r, r) for r in regions]
        self.fields["region"].initial = initial_region
