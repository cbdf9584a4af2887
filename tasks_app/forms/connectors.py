"""AWS connectors: their settings and a test call."""

from django import forms

from tasks_app.forms.base import (
    ServiceValidatedModelForm,
    choice_field,
    model_choice_field,
)
from tasks_app.lib import ecr_public
from tasks_app.models import Connector, TaskConfig, Team
from tasks_app.policy.usability import UNATTENDED_USE, public_registry_refusal


class ConnectorForm(ServiceValidatedModelForm):
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
        fields = list(Connector.SETTINGS)
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
            "credentials": "An IAM user's access key, the portal host's own identity, or a "
            "web identity: the portal signs an ID token that AWS exchanges for a role's "
            "credentials (sts:AssumeRoleWithWebIdentity), so no AWS key is stored.",
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
            "unattended_use": f"{UNATTENDED_USE[0].upper()}{UNATTENDED_USE[1:]} may use "
            "this connector.",
        }
        widgets = {"session_policy": forms.Textarea(attrs={"rows": 6, "spellcheck": "false"})}

    def __init__(self, *args, owners, host_refusal: str | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.creating = self.instance._state.adding
        self.secret_changed = False
        if self.creating:
            model_choice_field(self, "owner").queryset = owners
            only_owner = owners.first() if owners.count() == 1 else None
            self.fields["owner"].initial = only_owner
            owner_id = only_owner.pk if only_owner else None
        else:
            del self.fields["owner"]
            keep = "Stored encrypted. Leave empty to keep the stored secret."
            self.fields["secret_access_key"].help_text = keep
            owner_id = self.instance.team_id
        others = Team.objects.exclude(pk=owner_id) if owner_id else Team.objects.all()
        model_choice_field(self, "shared_with").queryset = others.order_by("name")
        if host_refusal:
            field = choice_field(self, "credentials")
            field.choices = [
                c for c in Connector.Credentials.choices if c[0] != Connector.Credentials.HOST
            ]
            field.help_text = (
                f"An IAM user's access key, or a web identity (no stored key). {host_refusal}"
            )

    def clean_secret_access_key(self):
        value = self.cleaned_data["secret_access_key"]
        if not value and not self.creating:
            return self.instance.secret_access_key  # keep what is stored
        self.secret_changed = bool(value)
        return value

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        team = cleaned.get("owner") if self.creating else self.instance.team
        if team is not None:
            self.instance.team = team  # the save service's rules need the owner
        return cleaned


class ConnectorTestForm(forms.Form):
    registry = forms.ChoiceField(
        choices=TaskConfig.Registry.choices,
        initial=TaskConfig.Registry.PRIVATE,
        required=False,  # unsent: the private registry, as before the choice existed
        help_text=f"Amazon ECR Public's tokens come from {ecr_public.REGION} alone, "
        "whatever the region.",
    )
    region = forms.ChoiceField(help_text="Where to call ecr:GetAuthorizationToken.")

    def __init__(
        self, *args, regions: tuple[str, ...], initial_region: str, partition: str, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.partition = partition
        if public_registry_refusal(partition):
            # Not offered where it cannot work; a crafted choice still gets the refusal.
            self.fields["registry"].widget = forms.HiddenInput()
        choice_field(self, "region").choices = [(r, r) for r in regions]
        self.fields["region"].initial = initial_region

    def clean_registry(self):
        registry = self.cleaned_data["registry"] or TaskConfig.Registry.PRIVATE
        if registry == TaskConfig.Registry.PUBLIC:
            refusal = public_registry_refusal(self.partition)
            if refusal:
                raise forms.ValidationError(refusal.message, code=refusal.code)
        return registry
