"""Forms for workload identity (issue 17): trusted issuers and trust rules."""

from django import forms

from tasks_app.models import Job, TrustedIssuer


class IssuerForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="e.g. GitHub Actions, GitLab.")
    issuer = forms.CharField(
        label="Issuer URL",
        max_length=500,
        help_text="Exactly as its tokens' iss claim, e.g. "
        "https://token.actions.githubusercontent.com.",
    )


class TrustRuleForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="e.g. web main branch.")
    issuer = forms.ModelChoiceField(queryset=TrustedIssuer.objects.all())
    job = forms.ModelChoiceField(
        queryset=Job.objects.none(),
        required=False,
        empty_label="The whole plan (its result tasks)",
        help_text="A job: its tasks and the plan's result tasks, as a job token.",
    )
    audience = forms.CharField(
        max_length=300, help_text="The aud the job asks its CI system for, e.g. the portal's URL."
    )
    conditions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="One claim=pattern per line, exact or with * and ?, e.g. "
        "repository=acme/web and ref=refs/heads/main. One of them must pin an owner: "
        "repository, project_path, namespace_path (or their IDs) or sub, exact or with "
        "the wildcard after the owner and a slash (repository=acme/*).",
    )

    def __init__(self, *args, plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["job"].queryset = Job.objects.filter(plan=plan).order_by("key")  # type: ignore[attr-defined]

    def clean_conditions(self) -> dict:
        conditions = {}
        for number, line in enumerate(self.cleaned_data["conditions"].splitlines(), 1):
            if not line.strip():
                continue
            claim, sep, pattern = line.partition("=")
            if not sep or not claim.strip() or not pattern.strip():
                raise forms.ValidationError(
                    f"Line {number} is not claim=pattern, e.g. repository=acme/web."
                )
            conditions[claim.strip()] = pattern.strip()
        if not conditions:
            raise forms.ValidationError("Name at least one claim, e.g. repository=acme/web.")
        return conditions
