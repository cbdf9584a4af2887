"""Forms for people: invitations, accounts, the host-credentials grant."""

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator

from tasks_app.models import Role, Team


class InvitationForm(forms.Form):
    email = forms.EmailField(
        label="E-mail address",
        max_length=254,
        help_text="They get a link that works once; you can copy it here too.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


def _username_field(**kwargs) -> forms.CharField:
    return forms.CharField(
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text="Letters, digits and @ . + - _ only, at most 150 characters.",
        **kwargs,
    )


class InvitationAcceptForm(forms.Form):
    """A new account for an invited person: a username and a password chosen twice."""

    username = _username_field(widget=forms.TextInput(attrs={"autocomplete": "username"}))
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_username(self):
        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(f"The username {username} is taken. Choose another.")
        return username

    def clean(self):
        cleaned = super().clean() or {}
        one, two = cleaned.get("password1"), cleaned.get("password2")
        if one and two and one != two:
            self.add_error("password2", "The two passwords differ.")
        return cleaned


class UserCreateForm(forms.Form):
    username = _username_field()
    email = forms.EmailField(label="E-mail address", required=False, max_length=254)
    superuser = forms.BooleanField(
        label="Portal administrator",
        required=False,
        help_text="Manages accounts, teams and the host's AWS identity for everyone.",
    )

    def clean_username(self):
        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(f"The username {username} is taken.")
        return username


class HostCredentialsForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.all())
    allowed = forms.TypedChoiceField(
        choices=[("1", "grant"), ("0", "withdraw")], coerce=lambda v: v == "1"
    )
