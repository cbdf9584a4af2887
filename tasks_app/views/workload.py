"""Workload identity pages (issue 17): trusted issuers (portal administrators) and a plan's
trust rules (its team's admins)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tasks_app.forms.base import form_errors_add
from tasks_app.forms.workload import IssuerForm, TrustRuleForm
from tasks_app.identity.actor import actor_for
from tasks_app.models import Role, TrustedIssuer, TrustRule
from tasks_app.policy.access import require_superuser, require_team_role
from tasks_app.policy.loaders import plan_for_user
from tasks_app.services.workload import (
    issuer_register,
    issuer_remove,
    trust_rule_create,
    trust_rule_delete,
)


def _require_superuser(request) -> None:
    require_superuser(request.user, "Only portal administrators choose which issuers to trust.")


def issuer_list(request):
    _require_superuser(request)
    form = IssuerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            trusted = issuer_register(actor=actor_for(request), **form.cleaned_data)
        except ValidationError as e:
            form_errors_add(form, e)
        else:
            messages.success(request, f"Trusted {trusted.name}. Team admins can now add rules.")
            return redirect("oidc_issuer_list")
    issuers = TrustedIssuer.objects.annotate(rule_count=Count("rules")).order_by("name")
    return render(
        request,
        "workload/issuers.html",
        {"issuers": issuers, "form": form},
        status=400 if form.errors else 200,
    )


@require_POST
def issuer_delete(request, issuer_id):
    _require_superuser(request)
    issuer = get_object_or_404(TrustedIssuer, id=issuer_id)
    issuer_remove(issuer=issuer, actor=actor_for(request))
    messages.success(request, f"No longer trusting {issuer.name}.")
    return redirect("oidc_issuer_list")


def trust_rules(request, plan_id):
    """Every member sees the rules; the team's admins add and delete them."""
    plan, role = plan_for_user(request.user, plan_id)
    can_manage = role.allows(Role.ADMIN)
    form = TrustRuleForm(request.POST or None, plan=plan)
    if request.method == "POST":
        require_team_role(request.user, plan.team, Role.ADMIN)
        if form.is_valid():
            rule = TrustRule(team=plan.team, plan=plan, **form.cleaned_data)
            try:
                trust_rule_create(rule=rule, actor=actor_for(request))
            except ValidationError as e:
                form_errors_add(form, e)
            else:
                messages.success(request, f"Added the trust rule {rule.name}.")
                return redirect("trust_rules", plan_id=plan.id)
    rules = TrustRule.objects.filter(plan=plan).select_related("issuer", "job")
    context = {"plan": plan, "rules": rules, "form": form, "can_manage": can_manage}
    return render(request, "workload/rules.html", context, status=400 if form.errors else 200)


@require_POST
def trust_rule_delete_view(request, plan_id, rule_id):
    plan, _ = plan_for_user(request.user, plan_id, need=Role.ADMIN)
    rule = get_object_or_404(TrustRule, id=rule_id, plan=plan)
    trust_rule_delete(rule=rule, actor=actor_for(request))
    messages.success(request, f"Deleted the trust rule {rule.name}.")
    return redirect("trust_rules", plan_id=plan.id)
