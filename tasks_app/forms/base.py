"""What every form of the portal shares: a save service's ValidationError shown on the form."""

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError


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
    (tasks_app/services/validation.py), so that the API and the form give the same messages.

    When the form itself finds errors, the service's rules are checked too (`service_validate`)
    and their errors on the other fields shown with them: one submit lists every error."""

    def validate_unique(self) -> None:
        pass

    def service_validate(self, known: set[str]) -> None:
        """The save service's validation of self.instance (raises ValidationError by model
        field); `known`: the model fields already in error. None by default."""

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]
        if not self.errors:
            return  # the save service validates, once, when it saves
        aliases = getattr(self, "error_fields", {})
        fields_of = {control: field for field, control in aliases.items()}
        known = {fields_of.get(name, name) for name in self.errors}
        try:
            self.service_validate(known)
        except ValidationError as e:
            errors = e.message_dict if hasattr(e, "error_dict") else {NON_FIELD_ERRORS: e.messages}
            fresh = {field: m for field, m in errors.items() if field not in known}
            if fresh:
                form_errors_add(self, ValidationError(fresh))
