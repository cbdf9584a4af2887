from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.timezone import now
from django.views.decorators.http import require_POST

from tasks_app.formats.timeline import timeline
from tasks_app.forms.base import form_save
from tasks_app.forms.plans import TaskForm
from tasks_app.identity.actor import actor_for
from tasks_app.models import Role, TaskConfig, TaskRun
from tasks_app.policy.access import teams_for_user
from tasks_app.policy.loaders import job_for_user, task_for_user
from tasks_app.policy.usability import connectors_usable_by, host_identity_refusal
from tasks_app.rules.generated_variables import generated_keys
from tasks_app.selectors import ecr_policy_document, region_groups
from tasks_app.services.delivery import NotServable, task_revealed
from tasks_app.services.plans import task_delete, task_save
from tasks_app.services.runs import TaskDisabled, task_run
from tasks_app.services.variables import task_variables
from tasks_app.views.confirm import confirm_page
from tasks_app.views.usage import Endpoints, masked_values, revealed_response, usage

RECENT_RUNS = 25


def task_list(request):
    tasks = (
        TaskConfig.objects.filter(job__plan__team__in=teams_for_user(request.user))
        .select_related("job__plan__team", "connector", "credential")
        .order_by("job__plan__key", "job__stage", "job__key", "position")
    )
    return render(request, "tasks/list.html", {"tasks": tasks})


def _saved_message(task: TaskConfig, *, created: bool) -> str:
    """What saving said: a disabled task is never invited to run (its Run now is off)."""
    done = "Created the task." if created else "Saved the task."
    if not task.enabled:
        return f"{done} It is disabled: it does not run until you enable it."
    return f"{done} Run it now." if created else done


def _task_form(request, job, task: TaskConfig | None):
    team = job.plan.team
    connectors = list(connectors_usable_by(team).select_related("team").order_by("name"))
    form = TaskForm(
        request.POST or None,
        instance=task or TaskConfig(job=job),
        job=job,
        connectors=connectors,
        host_refusal=host_identity_refusal([team]),
        regions=region_groups(),
    )
    saved = form_save(
        request,
        form,
        lambda: task_save(
            task=form.instance,
            actor=actor_for(request),
            unresolved_allowed=form.cleaned_data.get("unresolved_allowed", False),
            confirm=TaskForm.CONFIRM_REFERENCES,
        ),
    )
    if saved is not None:
        messages.success(request, _saved_message(saved, created=task is None))
        return redirect("task_detail", task_id=saved.id)
    references_refused = bool(form.errors.keys() & {"region_variable", "connector_variable"})
    context = {"form": form, "job": job, "task": task, "references_refused": references_refused}
    return render(request, "tasks/form.html", context)


def task_create(request, job_id):
    job, _ = job_for_user(request.user, job_id, need=Role.EDITOR)
    return _task_form(request, job, None)


def task_edit(request, task_id):
    task, _ = task_for_user(request.user, task_id, need=Role.EDITOR)
    return _task_form(request, task.job, task)


def task_detail(request, task_id, delivery=None, problem=None, status=200):
    task, role = task_for_user(request.user, task_id)
    # Revealed: the table shows the values too (one more decryption, for this page only).
    results = task_variables(task, secrets=delivery is not None)
    task.scheduler = task.refresh_state(now())
    context = {
        "task": task,
        "job": task.job,
        "plan": task.job.plan,
        "can_edit": role.allows(Role.EDITOR),
        "results": results,
        "expected_keys": generated_keys(task.namespace),
        "runs": task.runs.select_related("actor", "connector")[:RECENT_RUNS],
        "status_changes": task.status_changes.all()[:RECENT_RUNS],
        "timeline": timeline([task], at=now()),
        "policy": ecr_policy_document(task.access, task.registry),
        "usage": usage(
            values=delivery.values if delivery is not None else masked_values(results),
            tasks=[task],
            endpoints=Endpoints.of_task(task),
            revealed=delivery is not None,
        ),
        "problem": problem,
    }
    response = render(request, "tasks/detail.html", context, status=status)
    return revealed_response(response, delivery)


@require_POST
def task_reveal(request, task_id):
    """Show the masked values: editors and admins only, by POST, audited, never cached."""
    task, _ = task_for_user(request.user, task_id, need=Role.EDITOR)
    try:
        delivery = task_revealed(task=task, actor=actor_for(request))
    except NotServable as e:
        return task_detail(request, task_id, problem=e.detail, status=409)
    return task_detail(request, task_id, delivery=delivery)


@require_POST
def task_run_view(request, task_id):
    task, _ = task_for_user(request.user, task_id, need=Role.EDITOR)
    try:
        run = task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=actor_for(request))
    except TaskDisabled as e:
        messages.error(request, e.message)
    else:
        if run.outcome == TaskRun.Outcome.SUCCEEDED:
            messages.success(
                request,
                f"Fetched new credentials; they expire {run.token_expires_at:%Y-%m-%d %H:%M} UTC.",
            )
        # A failure is shown once, by the page's "Last run failed" banner.
    return redirect("task_detail", task_id=task.id)


def task_delete_view(request, task_id):
    task, _ = task_for_user(request.user, task_id, need=Role.EDITOR)
    if request.method == "POST":
        job = task.job
        task_delete(task=task, actor=actor_for(request))
        messages.success(request, "Deleted the task and its variables.")
        return redirect("job_detail", job_id=job.id)
    cancel = reverse("task_detail", args=[task.id])
    return confirm_page(request, verb="Delete", what=f"task \u201c{task}\u201d", cancel=cancel)
