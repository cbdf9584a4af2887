from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import Q

from tasks_app.actor import actor_for
from tasks_app.models import Connector, Job, Plan, Role, TaskConfig, Team, Variable
from tasks_app.services.logins import login_retry_after, password_sign_in_allowed


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def form_errors_add(form: forms.BaseForm, error: ValidationError) -> None:
    """Show a save service's ValidationError on the form: at the control people use for the
    field (a form's `error_fields` maps model fields to it), else above the form."""
    aliases = getattr(form, "error_fields", {})
    errors = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
    for field, messages in errors.items():
        target = aliases.get(field, field)
        form.add_error(target if target in form.fields else None, messages)


def form_save(request, form: forms.BaseForm, save):
    """On a POST with a valid form, save() through the service and return what it saved;
    the service's ValidationError goes onto the form (then, and otherwise, None)."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        return save()
    except ValidationError as e:
        form_errors_add(form, e)
        return None


def choice_field(form: forms.BaseForm, name: str) -> forms.ChoiceField:
    """A form's choice field, as the type checker should see it."""
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    return field


def model_choice_field(form: forms.BaseForm, name: str) -> forms.ModelChoiceField:
    field = form.fields[name]
    assert isinstance(field, forms.ModelChoiceField)
    return field


class ServiceValidatedModelForm(forms.ModelForm):
    """A model form whose uniqueness and cross-row rules are checked by the save service
    (tasks_app/validation.py), so that the API and the form give the same messages."""

    def validate_unique(self) -> None:
        pass


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
                    params={"wait": _minutes(wait)},
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
        from tasks_app.webhooks import WebhookError, webhook_target

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
            "unattended_use": "Scheduled refreshes and API tokens may use this connector.",
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
    region = forms.ChoiceField(help_text="Where to call ecr:GetAuthorizationToken.")

    def __init__(self, *args, regions: tuple[str, ...], initial_region: str, **kwargs):
        super().__init__(*args, **kwargs)
        choice_field(self, "region").choices = [(r, r) for r in regions]
        self.fields["region"].initial = initial_region


class PlanForm(ServiceValidatedModelForm):
    class Meta:
        model = Plan
        fields = ["team", "key", "name"]
        help_texts = {
            "key": "PROJECT-PLAN, e.g. WEB-BUILD: two parts of 2 to 10 capital letters "
            "and digits.",
            "name": "e.g. Web application build.",
        }

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance._state.adding:
            model_choice_field(self, "team").queryset = teams
            if teams.count() == 1:
                self.fields["team"].initial = teams.first()
        else:
            del self.fields["team"]


class JobForm(ServiceValidatedModelForm):
    class Meta:
        model = Job
        fields = ["key", "name", "stage"]
        help_texts = {"key": "2 to 10 capital letters and digits, e.g. JOB1."}

    def __init__(self, *args, plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.plan = plan


class VariableForm(ServiceValidatedModelForm):
    """An input variable. Values of masked keys are write-only, like connector secrets."""

    value = forms.CharField(required=False, strip=False, widget=forms.TextInput)

    class Meta:
        model = Variable
        fields = ["key"]
        help_texts = {
            "key": "e.g. aws.region. Keys containing password, secret, passphrase or sshkey are "
            "masked and stored encrypted.",
        }

    def __init__(self, *args, team, plan=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.team, self.instance.plan = team, plan
        if not self.instance._state.adding and self.instance.masked:
            self.fields["value"].widget = forms.PasswordInput(render_value=False)
            self.fields["value"].help_text = "Masked: leave empty to keep the stored value."
        elif not self.instance._state.adding:
            self.initial["value"] = self.instance.value

    def new_value(self) -> str | None:
        """The value to store, or None to keep the stored one (masked, left empty)."""
        value = self.cleaned_data["value"]
        if not value and not self.instance._state.adding and self.instance.pk:
            stored = Variable.objects.get(pk=self.instance.pk)
            if stored.masked:
                return None
        return value


USE_VARIABLE = "variable"


class TaskForm(ServiceValidatedModelForm):
    """The settings of the Amazon ECR Credentials Variables task, as in the reference document."""

    disabled = forms.BooleanField(
        label="Disable this task",
        required=False,
        help_text="Check, or clear, to selectively run this task.",
    )
    region_choice = forms.ChoiceField(
        label="Region",
        help_text="Select the desired AWS region, or [Use region variable ...] to supply the "
        "region dynamically via a variable (needs to be a region code such as ap-southeast-2).",
    )
    unresolved_allowed = forms.BooleanField(
        label="These variables will exist when the task runs",
        required=False,
        help_text="Save although a referenced variable is not defined (or not valid) yet.",
    )
    connector_choice = forms.ChoiceField(
        label="Connector",
        required=False,
        help_text="Select the shared Identity Federation for AWS connector, or [Use connector "
        "variable ...] to supply it via a variable (needs to be a connector ID such as "
        "f24e81bc-7aff-42db-86a2-7cf82e24d871).",
    )

    class Meta:
        model = TaskConfig
        # The form's own controls stand for enabled, region and connector (see below).
        fields = [f for f in TaskConfig.SETTINGS if f not in ("enabled", "region", "connector")]
        labels = {
            "region_variable": "Region variable",
            "connector_variable": "Connector variable",
            "namespace": "Namespace",
            "scope": "Scope",
        }
        help_texts = {
            "description": "(Optional) Identify the purpose of the task.",
            "region_variable": "A reference such as ${bamboo.aws.region}.",
            "registry_id": "(Optional) The AWS account ID of the registry to get authorization "
            "credentials for. If you do not specify a registry, the default registry is assumed.",
            "namespace": "Provide the namespace for generated variables.",
            "scope": "Select the scope for generated variables.",
            "credentials_source": "Select the AWS credentials source.",
            "access": "Pull only: the token can pull images and cannot push (a session policy "
            "that allows pulling alone; for connectors that assume a role or become a "
            "federated user, and the host's identity with a role ARN).",
            "connector_variable": "A reference such as ${bamboo.aws.connector}.",
            "role_arn": "(Optional) The ARN of another role that the host's IAM role should "
            "assume.",
        }
        widgets = {
            "scope": forms.RadioSelect,
            "credentials_source": forms.RadioSelect,
            "access": forms.RadioSelect,
        }

    def __init__(self, *args, job, connectors, host_refusal: str | None, regions, **kwargs):
        super().__init__(*args, **kwargs)
        task = self.instance
        task.job = job
        self.fields["disabled"].initial = not task.enabled
        choice_field(self, "region_choice").choices = [
            ("", "Choose a region"),
            *[(label, [(r, r) for r in codes]) for label, codes in regions],
            (USE_VARIABLE, "[Use region variable ...]"),
        ]
        self.fields["region_choice"].initial = (
            USE_VARIABLE if task.region_variable else task.region
        )
        choice_field(self, "connector_choice").choices = [
            ("", "Choose a connector"),
            *[(str(c.id), f"{c.name} ({c.team.name})") for c in connectors],
            (USE_VARIABLE, "[Use connector variable ...]"),
        ]
        self.fields["connector_choice"].initial = (
            USE_VARIABLE if task.connector_variable else str(task.connector_id or "")
        )
        self._connectors = {str(c.id): c for c in connectors}
        self.fields["access"].required = False  # unsent: push and pull, as before it existed
        if host_refusal:
            field = choice_field(self, "credentials_source")
            field.choices = [
                c for c in TaskConfig.Source.choices if c[0] != TaskConfig.Source.HOST
            ]
            field.help_text = f"{field.help_text} {host_refusal}".strip()

    def clean_access(self):
        return self.cleaned_data.get("access") or TaskConfig.Access.PUSH_PULL

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        task = self.instance
        task.enabled = not cleaned.get("disabled")
        region = cleaned.get("region_choice")
        if region != USE_VARIABLE:
            task.region = region or ""
            cleaned["region_variable"] = ""
        choice = cleaned.get("connector_choice")
        if choice == USE_VARIABLE:
            task.connector = None
        else:
            task.connector = self._connectors.get(choice or "")
            cleaned["connector_variable"] = ""
        return cleaned

    # Model validation names the model's fields; show those errors at the controls
    # people actually use.
    error_fields = {"region": "region_choice", "connector": "connector_choice"}

    def _update_errors(self, errors):
        if hasattr(errors, "error_dict"):
            errors = forms.ValidationError(
                {self.error_fields.get(k, k): v for k, v in errors.error_dict.items()}
            )
        super()._update_errors(errors)  # type: ignore[misc]


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. web-build CI.")
    binding = forms.ChoiceField(
        label="Bound to",
        help_text="A plan token sees the plan's result variables; a job token also sees the "
        "job's local variables.",
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=3650,
        help_text="Empty: no expiry (revoke it when no longer needed).",
    )

    def __init__(self, *args, plans, **kwargs):
        super().__init__(*args, **kwargs)
        choices, self._targets = [], {}
        for plan in plans:
            group = [(f"plan:{plan.id}", f"Plan {plan.key} (result variables)")]
            self._targets[f"plan:{plan.id}"] = (plan, None)
            for job in plan.jobs.all():
                group.append((f"job:{job.id}", f"Job {plan.key}-{job.key}"))
                self._targets[f"job:{job.id}"] = (plan, job)
            choices.append((f"{plan.key} {plan.name}", group))
        choice_field(self, "binding").choices = choices

    def target(self):
        return self._targets[self.cleaned_data["binding"]]
