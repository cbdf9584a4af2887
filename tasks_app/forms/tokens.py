"""API tokens of a plan or a job."""

from django import forms

from tasks_app.forms.base import (
    choice_field,
)


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
