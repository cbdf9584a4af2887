from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import PasswordChangeForm
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from tasks_app.forms.accounts import LoginForm
from tasks_app.identity.actor import actor_for
from tasks_app.models import Profile
from tasks_app.services.audit import audit_record
from tasks_app.services.logins import login_failed, login_succeeded

SESSION_MUST_CHANGE_PASSWORD = "must_change_password"  # noqa: S105 - a session key name


def _safe_next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url(settings.LOGIN_REDIRECT_URL)


@login_not_required
@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def login_view(request):
    if request.user.is_authenticated:
        return redirect(_safe_next(request))

    form = LoginForm(request, data=request.POST or None)
    valid = request.method == "POST" and form.is_valid()
    if form.failure:
        login_failed(
            actor=actor_for(request),
            username=form.cleaned_data.get("username") or "",
            throttled=form.failure == "throttled",
        )
    if valid:
        user = form.get_user()
        # login() gives the session a new key, so a key planted before sign-in is useless.
        login(request, user)
        login_succeeded(actor=actor_for(request))
        if Profile.objects.filter(user=user, must_change_password=True).exists():
            request.session[SESSION_MUST_CHANGE_PASSWORD] = True
            messages.info(request, "Choose your own password to replace the one-time password.")
            return redirect("password_change")
        return redirect(_safe_next(request))

    return render(request, "accounts/login.html", {"form": form, "next": _safe_next(request)})


@require_POST
def logout_view(request):
    audit_record(action="logout", summary="Signed out", actor=actor_for(request))
    logout(request)
    messages.info(request, "You have signed out.")
    return redirect(settings.LOGOUT_REDIRECT_URL)


@sensitive_post_parameters()
@never_cache
def password_change(request):
    form = PasswordChangeForm(request.user, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        # Keep this session signed in; every other session of the user ends.
        update_session_auth_hash(request, user)
        Profile.objects.filter(user=user).update(must_change_password=False)
        request.session.pop(SESSION_MUST_CHANGE_PASSWORD, None)
        audit_record(
            action="password.changed", summary="Changed own password", actor=actor_for(request)
        )
        messages.success(request, "Your password has been changed.")
        return redirect("dashboard")
    forced = bool(request.session.get(SESSION_MUST_CHANGE_PASSWORD))
    return render(request, "accounts/password_change.html", {"form": form, "forced": forced})
