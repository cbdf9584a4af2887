"""Workload identity pages (issue 17): trusted issuers (portal administrators) and a plan's
trust rules (its team's admins)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

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
from tasks_app.views.confirm import confirm_page


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


def issuer_delete(request, issuer_id):
    _require_superuser(request)
    issuer = get_object_or_404(TrustedIssuer, id=issuer_id)
    if request.method != "POST":
        return confirm_page(
            request,
            verb="Stop trusting",
            what=issuer.name,
            consequence="CI jobs of this issuer can no longer use their ID tokens here, and "
            f"the {issuer.rules.count()} trust rule(s) that name it are deleted with it.",
            cancel=reverse("oidc_issuer_list"),
        )
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


def trust_rule_delete_view(request, plan_id, rule_id):
    plan, _ = plan_for_user(request.user, plan_id, need=Role.ADMIN)
    rule = get_object_or_404(TrustRule, id=rule_id, plan=plan)
    if request.method != "POST":
        return confirm_page(
            request,
            verb="Delete",
            what=f"the trust rule {rule.name}",
            consequence="CI jobs it admits can no longer use their ID tokens for this plan.",
            cancel=reverse("trust_rules", args=[plan.id]),
        )
    trust_rule_delete(rule=rule, actor=actor_for(request))
    messages.success(request, f"Deleted the trust rule {rule.name}.")
    return redirect("trust_rules", plan_id=plan.id)
