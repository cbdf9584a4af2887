"""What every form of the portal shares: a save service's ValidationError shown on the form."""

from django import forms
from django.core.exceptions import ValidationError


def minutes_phrase(seconds: int) -> str:
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
    (tasks_app/services/validation.py), so that the API and the form give the same messages."""

    def validate_unique(self) -> None:
        pass
