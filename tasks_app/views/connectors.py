from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from tasks_app.forms.base import form_save
from tasks_app.forms.connectors import ConnectorForm, ConnectorTestForm
from tasks_app.identity.actor import actor_for
from tasks_app.models import Connector, TaskConfig, Team
from tasks_app.policy.access import (
    ConnectorAccess,
    connector_owner_fields_visible,
    connectors_for_user,
    teams_administered_by,
)
from tasks_app.policy.loaders import connector_for_user
from tasks_app.policy.usability import host_identity_refusal
from tasks_app.selectors import connector_test_regions, ecr_policy_document
from tasks_app.services.connectors import (
    ConnectorInUse,
    connector_delete,
    connector_save,
    connector_test,
)
from tasks_app.services.issuer import web_identity_setup
from tasks_app.views.confirm import confirm_page


def _host_refusal(request, connector: Connector | None) -> str | None:
    """Why the host's own identity is not offered; None when it is."""
    if connector is not None:
        return host_identity_refusal([connector.team])
    return host_identity_refusal(teams_administered_by(request.user).order_by("name"))


def connector_list(request):
    connectors = (
        connectors_for_user(request.user)
        .select_related("team")
        .prefetch_related(Prefetch("shared_with", queryset=Team.objects.order_by("name")))
        .order_by("team__name", "name")
    )
    can_create = teams_administered_by(request.user).exists()
    return render(
        request, "connectors/list.html", {"connectors": connectors, "can_create": can_create}
    )


def _connector_form(request, connector: Connector | None, owners):
    """Create (connector None) or edit a connector: the same form and save for both."""
    form = ConnectorForm(
        request.POST or None,
        instance=connector or Connector(),
        owners=owners,
        host_refusal=_host_refusal(request, connector),
    )
    saved = form_save(
        request,
        form,
        lambda: connector_save(
            connector=form.instance,
            shared_with=list(form.cleaned_data["shared_with"]),
            secret_changed=form.secret_changed,
            actor=actor_for(request),
        ),
    )
    if saved is not None:
        done = (
            f"Saved connector {saved.name}."
            if connector
            else (f"Created connector {saved.name}. Test it below.")
        )
        messages.success(request, done)
        return redirect("connector_detail", connector_id=saved.id)
    return render(request, "connectors/form.html", {"form": form, "connector": connector})


def connector_create(request):
    owners = teams_administered_by(request.user).order_by("name")
    if not owners.exists():
        raise PermissionDenied("Only team admins create connectors.")
    return _connector_form(request, None, owners)


def connector_edit(request, connector_id):
    connector, _ = connector_for_user(request.user, connector_id, need=ConnectorAccess.MANAGE)
    return _connector_form(request, connector, Team.objects.none())


def connector_detail(request, connector_id, test_form=None, outcome=None):
    connector, access = connector_for_user(request.user, connector_id)
    regions, default_region = connector_test_regions(connector.partition)
    context = {
        "connector": connector,
        "access": access,
        "can_manage": access >= ConnectorAccess.MANAGE,
        "shows_owner_fields": connector_owner_fields_visible(access),
        "can_use": access >= ConnectorAccess.USE,
        "shared_with": connector.shared_with.order_by("name"),
        "test_form": test_form
        or ConnectorTestForm(
            regions=regions, initial_region=default_region, partition=connector.partition
        ),
        "outcome": outcome,
        "web_identity": (
            web_identity_setup(connector)
            if connector.credentials == Connector.Credentials.WEB_IDENTITY
            else None
        ),
    }
    return render(request, "connectors/detail.html", context)


@require_POST
def connector_test_view(request, connector_id):
    connector, _ = connector_for_user(request.user, connector_id, need=ConnectorAccess.USE)
    regions, default_region = connector_test_regions(connector.partition)
    form = ConnectorTestForm(
        request.POST,
        regions=regions,
        initial_region=default_region,
        partition=connector.partition,
    )
    if not form.is_valid():
        return connector_detail(request, connector_id, test_form=form)
    outcome = connector_test(
        connector=connector,
        region=form.cleaned_data["region"],
        registry=form.cleaned_data["registry"],
        actor=actor_for(request),
    )
    connector.refresh_from_db()
    return connector_detail(request, connector_id, test_form=form, outcome=outcome)


def connector_delete_view(request, connector_id):
    connector, _ = connector_for_user(request.user, connector_id, need=ConnectorAccess.MANAGE)
    if request.method == "POST":
        name = connector.name
        try:
            connector_delete(connector=connector, actor=actor_for(request))
        except ConnectorInUse as e:
            messages.error(request, str(e))
            return redirect("connector_detail", connector_id=connector.id)
        messages.success(request, f"Deleted connector {name}.")
        return redirect("connector_list")
    tasks = connector.tasks.select_related("job__plan")
    return confirm_page(
        request,
        verb="Delete",
        what=connector.name,
        consequence="The connector and its encrypted secret are removed for good. "
        "Teams it is shared with lose it too.",
        cancel=reverse("connector_detail", args=[connector.id]),
        template="connectors/delete.html",
        tasks=tasks,
    )


def ecr_policy(request):
    """The IAM policy the ECR credentials task needs (SPEC §4.3), ready to copy."""
    policies = [
        ecr_policy_document(access, registry)
        for registry in TaskConfig.Registry.values
        for access in TaskConfig.Access.values
    ]
    return render(
        request,
        "connectors/ecr_policy.html",
        {"policies": policies},
    )
