from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.timezone import now
from django.views.decorators.cache import never_cache

from tasks_app.formats.snippets import token_snippet, with_query
from tasks_app.forms.tokens import ApiTokenForm
from tasks_app.identity.actor import actor_for
from tasks_app.models import ApiToken, Plan, Role
from tasks_app.policy.access import teams_for_user, teams_with_role
from tasks_app.policy.loaders import token_for_user
from tasks_app.services.tokens import token_create, token_revoke
from tasks_app.views.confirm import confirm_page

EXAMPLE_PLAN = "PLAN-KEY"


def _token_example(token: ApiToken | None) -> dict:
    """How a CI job uses a token: for its binding, else (None) a plan key to replace. The
    token itself is a placeholder: the portal keeps only its hash."""
    plan_key = token.plan.key if token is not None else EXAMPLE_PLAN
    job_key = token.job.key if token is not None and token.job is not None else ""
    url = str(settings.SITE_URL) + reverse("api_plan_variables", args=[plan_key])
    if job_key:
        url = with_query(url, job=job_key)
    return {
        "plan": plan_key,
        "job": job_key,
        "bound": token is not None,
        "code": token_snippet(variables_url=url),
    }


def token_list(request):
    tokens = list(
        ApiToken.objects.filter(team__in=teams_for_user(request.user))
        .select_related("plan", "job", "created_by")
        .order_by("-created")
    )
    can_create = teams_with_role(request.user, Role.EDITOR).exists()
    newest = next((t for t in tokens if t.active), None)
    context = {"tokens": tokens, "can_create": can_create, "example": _token_example(newest)}
    return render(request, "tokens/list.html", context)


@never_cache
def token_create_view(request):
    plans = (
        Plan.objects.filter(team__in=teams_with_role(request.user, Role.EDITOR))
        .prefetch_related("jobs")
        .order_by("key")
    )
    if not plans:
        raise PermissionDenied("Editors and admins of a team with a plan create API tokens.")
    form = ApiTokenForm(request.POST or None, plans=plans)
    if request.method == "POST" and form.is_valid():
        plan, job = form.target()
        days = form.cleaned_data["expires_in_days"]
        token, raw = token_create(
            plan=plan,
            job=job,
            name=form.cleaned_data["name"],
            expires_at=now() + timedelta(days=days) if days else None,
            actor=actor_for(request),
        )
        # Shown once, on this response only; never stored or cached.
        context = {"token": token, "raw": raw, "example": _token_example(token)}
        response = render(request, "tokens/created.html", context)
        response["Cache-Control"] = "no-store"
        return response
    return render(request, "tokens/form.html", {"form": form})


def token_revoke_view(request, token_id):
    token = token_for_user(request.user, token_id)
    if request.method != "POST":
        return confirm_page(
            request,
            verb="Revoke",
            what=f"the token {token.name} ({token.hint}\u2026)",
            consequence="It stops working at once, for every CI job that uses it. "
            "This cannot be undone: a job needs a new token.",
            cancel=reverse("token_list"),
        )
    if token_revoke(token=token, actor=actor_for(request)):
        messages.success(request, f"Revoked {token}. It no longer works.")
    else:
        messages.info(request, f"{token} was revoked already.")
    return redirect("token_list")
