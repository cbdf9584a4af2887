"""Plans, jobs, input variables and Amazon ECR credentials tasks."""

from django import forms

from tasks_app.forms.base import (
    ServiceValidatedModelForm,
    choice_field,
    model_choice_field,
)
from tasks_app.models import Job, Plan, TaskConfig, Variable
from tasks_app.services.validation import job_validate, plan_validate, task_validate


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

    def service_validate(self, known: set[str]) -> None:
        plan_validate(self.instance)


class JobForm(ServiceValidatedModelForm):
    class Meta:
        model = Job
        fields = ["key", "name", "stage"]
        help_texts = {"key": "2 to 10 capital letters and digits, e.g. JOB1."}

    def __init__(self, *args, plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.plan = plan

    def service_validate(self, known: set[str]) -> None:
        job_validate(self.instance)


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


UNRESOLVED_ALLOWED = "These variables will be defined and valid when the task runs"


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
        label=UNRESOLVED_ALLOWED,
        required=False,
        help_text="Save although a referenced variable is not defined (or not valid) yet.",
    )
    # How a person confirms here, in a reference's error (services/validation.py).
    CONFIRM_REFERENCES = f"tick \u201c{UNRESOLVED_ALLOWED}\u201d below"
    connector_choice = forms.ChoiceField(
        label="Connector",
        required=False,
        help_text="Select the connector whose credentials the task uses (your team's, or one "
        "shared with it), or [Use connector variable ...] to supply it via a variable (needs "
        "to be a connector ID such as f24e81bc-7aff-42db-86a2-7cf82e24d871).",
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
            "registry": "Amazon ECR Public issues its tokens in us-east-1 alone, for "
            "public.ecr.aws: they push to your public repositories and pull with the higher "
            "rate limits of authenticated requests. Its region is us-east-1 and it takes no "
            "registry ID.",
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
            "registry": forms.RadioSelect,
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
        current = task.connector if task.pk and task.connector_id else None
        if current is not None and current not in connectors:
            # The task's own connector stays a choice when the team may no longer use it: the
            # rule of use then says why, in its own words, when the task is saved.
            connectors = [*connectors, current]
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
        self.fields["registry"].required = False  # unsent: private, as before it existed
        if self.data.get("registry") == TaskConfig.Registry.PUBLIC:
            # ECR Public's region is fixed (rules/task_settings.py); its control is hidden.
            self.fields["region_choice"].required = False
        if host_refusal and task.credentials_source != TaskConfig.Source.HOST:
            field = choice_field(self, "credentials_source")
            field.choices = [
                c for c in TaskConfig.Source.choices if c[0] != TaskConfig.Source.HOST
            ]
            field.help_text = f"{field.help_text} {host_refusal}".strip()

    def service_validate(self, known: set[str]) -> None:
        # A region or connector control in error chose neither the value nor its variable.
        for field in ("region", "connector"):
            if field in known:
                known = known | {f"{field}_variable"}
        task_validate(
            self.instance,
            unresolved_allowed=self.cleaned_data.get("unresolved_allowed", False),
            known=known,
            confirm=self.CONFIRM_REFERENCES,
        )

    def clean_access(self):
        return self.cleaned_data.get("access") or TaskConfig.Access.PUSH_PULL

    def clean_registry(self):
        return self.cleaned_data.get("registry") or TaskConfig.Registry.PRIVATE

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
