from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from tasks_app.forms.base import form_save
from tasks_app.forms.plans import JobForm, PlanForm
from tasks_app.identity.actor import actor_for
from tasks_app.models import Job, Plan, Role, TaskConfig
from tasks_app.policy.access import teams_for_user, teams_with_role
from tasks_app.policy.loaders import job_for_user, plan_for_user
from tasks_app.services.delivery import Delivery, NotServable, scope_revealed
from tasks_app.services.plans import job_delete, job_save, plan_delete, plan_save
from tasks_app.services.variables import scope_tasks, variables_of
from tasks_app.views.confirm import confirm_page
from tasks_app.views.usage import Endpoints, masked_values, revealed_response, usage


def _tasks_with_related():
    return TaskConfig.objects.select_related(
        "connector", "connector__team", "credential"
    ).order_by("position", "created")


def plan_list(request):
    plans = (
        Plan.objects.filter(team__in=teams_for_user(request.user))
        .select_related("team")
        .annotate(job_count=Count("jobs", distinct=True), task_count=Count("jobs__tasks"))
        .order_by("key")
    )
    can_create = teams_with_role(request.user, Role.EDITOR).exists()
    return render(request, "plans/list.html", {"plans": plans, "can_create": can_create})


def plan_create(request):
    teams = teams_with_role(request.user, Role.EDITOR).order_by("name")
    if not teams.exists():
        raise PermissionDenied("Editors and admins of a team create plans.")
    form = PlanForm(request.POST or None, teams=teams)
    plan = form_save(
        request, form, lambda: plan_save(plan=form.instance, actor=actor_for(request))
    )
    if plan is not None:
        messages.success(request, f"Created plan {plan.key}. Add a job next.")
        return redirect("plan_detail", plan_id=plan.id)
    return render(request, "plans/form.html", {"form": form, "plan": None})


def plan_edit(request, plan_id):
    plan, _ = plan_for_user(request.user, plan_id, need=Role.EDITOR)
    form = PlanForm(request.POST or None, instance=plan, teams=None)
    if form_save(request, form, lambda: plan_save(plan=form.instance, actor=actor_for(request))):
        messages.success(request, f"Saved plan {plan.key}.")
        return redirect("plan_detail", plan_id=plan.id)
    return render(request, "plans/form.html", {"form": form, "plan": plan})


def _credentials(plan: Plan, job: Job | None, delivery: Delivery | None) -> dict:
    """The variables a plan or job sees (revealed: with their values) and how to use them."""
    tasks = list(scope_tasks(plan, job))  # one read: the table and the tabs
    results = variables_of(tasks, secrets=delivery is not None)
    return {
        "results": results,
        "usage": usage(
            values=delivery.values if delivery is not None else masked_values(results),
            tasks=tasks,
            endpoints=Endpoints.of_scope(plan, job),
            revealed=delivery is not None,
        )
        if tasks
        else None,
    }


def plan_detail(request, plan_id, delivery=None, problem=None, status=200):
    plan, role = plan_for_user(request.user, plan_id)
    jobs = plan.jobs.prefetch_related(Prefetch("tasks", queryset=_tasks_with_related()))
    context = {
        "plan": plan,
        "can_edit": role.allows(Role.EDITOR),
        "jobs": jobs,
        "variables": plan.variables.order_by("key"),
        "problem": problem,
        **_credentials(plan, None, delivery),
    }
    response = render(request, "plans/detail.html", context, status=status)
    return revealed_response(response, delivery)


@require_POST
def plan_reveal(request, plan_id):
    """The plan's masked values on its page: editors and admins only, by POST, audited."""
    plan, _ = plan_for_user(request.user, plan_id, need=Role.EDITOR)
    try:
        delivery = scope_revealed(plan=plan, actor=actor_for(request))
    except NotServable as e:
        return plan_detail(request, plan_id, problem=e.detail, status=409)
    return plan_detail(request, plan_id, delivery=delivery)


def plan_delete_view(request, plan_id):
    plan, _ = plan_for_user(request.user, plan_id, need=Role.EDITOR)
    if request.method == "POST":
        plan_delete(plan=plan, actor=actor_for(request))
        messages.success(request, f"Deleted plan {plan.key}.")
        return redirect("plan_list")
    cancel = reverse("plan_detail", args=[plan.id])
    return confirm_page(request, verb="Delete", what=f"plan {plan.key}", cancel=cancel)


def job_create(request, plan_id):
    plan, _ = plan_for_user(request.user, plan_id, need=Role.EDITOR)
    form = JobForm(request.POST or None, plan=plan)
    job = form_save(request, form, lambda: job_save(job=form.instance, actor=actor_for(request)))
    if job is not None:
        messages.success(request, f"Created job {job.key}. Add a task next.")
        return redirect("job_detail", job_id=job.id)
    return render(request, "plans/job_form.html", {"form": form, "plan": plan, "job": None})


def job_edit(request, job_id):
    job, _ = job_for_user(request.user, job_id, need=Role.EDITOR)
    form = JobForm(request.POST or None, instance=job, plan=job.plan)
    if form_save(request, form, lambda: job_save(job=form.instance, actor=actor_for(request))):
        messages.success(request, f"Saved job {job.key}.")
        return redirect("job_detail", job_id=job.id)
    return render(request, "plans/job_form.html", {"form": form, "plan": job.plan, "job": job})


def job_detail(request, job_id, delivery=None, problem=None, status=200):
    job, role = job_for_user(request.user, job_id)
    context = {
        "job": job,
        "plan": job.plan,
        "can_edit": role.allows(Role.EDITOR),
        "tasks": _tasks_with_related().filter(job=job),
        "problem": problem,
        **_credentials(job.plan, job, delivery),
    }
    response = render(request, "plans/job_detail.html", context, status=status)
    return revealed_response(response, delivery)


@require_POST
def job_reveal(request, job_id):
    """What the job sees, unmasked on its page: editors and admins only, by POST, audited."""
    job, _ = job_for_user(request.user, job_id, need=Role.EDITOR)
    try:
        delivery = scope_revealed(plan=job.plan, job=job, actor=actor_for(request))
    except NotServable as e:
        return job_detail(request, job_id, problem=e.detail, status=409)
    return job_detail(request, job_id, delivery=delivery)


def job_delete_view(request, job_id):
    job, _ = job_for_user(request.user, job_id, need=Role.EDITOR)
    if request.method == "POST":
        job_delete(job=job, actor=actor_for(request))
        messages.success(request, f"Deleted job {job.key}.")
        return redirect("plan_detail", plan_id=job.plan_id)
    cancel = reverse("job_detail", args=[job.id])
    return confirm_page(request, verb="Delete", what=f"job {job}", cancel=cancel)
