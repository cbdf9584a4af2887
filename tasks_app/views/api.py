"""API v1: credentials for CI jobs (SPEC §8.2). Errors are {"error", "detail"}."""

from dataclasses import dataclass

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.timezone import now
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from tasks_app import ttl_cache
from tasks_app.access import require_team_role
from tasks_app.actor import actor_for
from tasks_app.api import (
    Conflict,
    check_task_access,
    check_token_may_run,
    token_may_see,
    token_of,
)
from tasks_app.models import Plan, Role, TaskConfig, TaskRun
from tasks_app.services.delivery import (
    Delivery,
    NotServable,
    record_read,
    scope_delivery,
    task_delivery,
)
from tasks_app.services.runs import TaskDisabled, task_run
from tasks_app.snippets import SHELLS, env_snippet

NO_STORE = {"Cache-Control": "no-store"}


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A code: unauthenticated, not_found, expired, ...")
    detail = serializers.JSONField(help_text="What went wrong, in words (or per field).")


class VariablesSerializer(serializers.Serializer):
    variables = serializers.DictField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField(required=False)


class RunSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskRun
        fields = [
            "id",
            "trigger",
            "started",
            "finished",
            "outcome",
            "region",
            "error_class",
            "error_message",
            "aws_request_id",
            "token_expires_at",
        ]


ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="No valid token or session."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown, or not visible to the caller."),
    409: OpenApiResponse(
        ErrorSerializer,
        description="Disabled, never fetched, or expired: the reason and the last error.",
    ),
}


def _task(request, task_id) -> TaskConfig:
    task = get_object_or_404(
        TaskConfig.objects.select_related("job__plan__team").prefetch_related("results"),
        id=task_id,
    )
    check_task_access(request, task)
    return task


@dataclass(frozen=True)
class _Served:
    """What the token path keeps of a task for ECRPORTAL_API_CACHE_SECONDS."""

    job_id: object
    plan_id: object
    scope: str
    status: str
    delivery: Delivery


def _served(request, task_id) -> _Served:
    """A task's variables for the caller: from the per-process cache on the token path."""
    token = token_of(request)
    served = ttl_cache.deliveries.get(task_id) if token is not None else None
    if served is None or served.delivery.expires_at <= now():
        task = _task(request, task_id)
        delivery = _delivery(task_delivery, task=task)
        served = _Served(task.job_id, task.job.plan_id, task.scope, task.status, delivery)
        if token is not None:
            ttl_cache.deliveries.put(task_id, served)
        else:
            _record_person(
                request, task, task.job.plan.team, f"Read the variables of \u201c{task}\u201d"
            )
    elif not token_may_see(
        token, job_id=served.job_id, plan_id=served.plan_id, scope=served.scope
    ):
        raise exceptions.NotFound("No such task.")
    return served


def _delivery(fn, **kwargs):
    try:
        return fn(**kwargs)
    except NotServable as e:
        raise Conflict(e.code, e.detail) from None


def _record_person(request, task, team, summary):
    if token_of(request) is None:
        record_read(actor=actor_for(request), task=task, summary=summary, team=team)


@extend_schema(
    summary="A task's variables",
    responses={200: VariablesSerializer, **ERRORS},
)
@login_not_required
@api_view(["GET"])
def task_variables(request, task_id):
    served = _served(request, task_id)
    delivery = served.delivery
    body = {
        "variables": delivery.values,
        "expires_at": delivery.expires_at,
        "status": served.status,
    }
    return Response(VariablesSerializer(body).data, headers=NO_STORE)


@extend_schema(
    summary="A task's variables as an environment snippet",
    parameters=[OpenApiParameter("shell", enum=list(SHELLS), required=True)],
    responses={
        (200, "text/plain"): OpenApiTypes.STR,
        400: OpenApiResponse(ErrorSerializer, description="Unknown shell."),
        **ERRORS,
    },
)
@login_not_required
@api_view(["GET"])
def task_env(request, task_id):
    served = _served(request, task_id)
    shell = request.query_params.get("shell", "")
    if shell not in SHELLS:
        raise exceptions.ValidationError({"shell": [f"Choose one of {', '.join(SHELLS)}."]})
    text = env_snippet(shell, served.delivery.values)
    return HttpResponse(text, content_type="text/plain; charset=utf-8", headers=NO_STORE)


@extend_schema(
    summary="What a plan, or one of its jobs, may see",
    parameters=[
        OpenApiParameter(
            "job", str, description="A job key: its local variables too, not only the plan's."
        )
    ],
    responses={200: VariablesSerializer, **ERRORS},
)
@login_not_required
@api_view(["GET"])
def plan_variables(request, plan_key):
    plan = Plan.objects.select_related("team").filter(key=plan_key).first()
    token = token_of(request)
    if plan is None or (token is not None and token.plan_id != plan.id):
        raise exceptions.NotFound("No such plan.")
    if token is None:
        require_team_role(request.user, plan.team, Role.EDITOR)
    job = None
    if job_key := request.query_params.get("job"):
        job = plan.jobs.filter(key=job_key).first()
        if job is None or (token is not None and token.job_id != job.id):
            raise exceptions.NotFound("No such job in this plan.")
    delivery = _delivery(scope_delivery, plan=plan, job=job)
    where = f"job {plan.key}-{job.key}" if job else f"plan {plan.key}"
    _record_person(request, None, plan.team, f"Read the variables of {where}")
    body = {"variables": delivery.values, "expires_at": delivery.expires_at}
    return Response(VariablesSerializer(body).data, headers=NO_STORE)


@extend_schema(
    summary="Run a task now",
    description="People who are editors of the task's team, and job tokens of the task's "
    "own job; plan tokens and tokens of other jobs get 403.",
    request=None,
    responses={
        201: RunSerializer,
        403: OpenApiResponse(ErrorSerializer, description="This token may not run the task."),
        **ERRORS,
    },
)
@login_not_required
@api_view(["POST"])
def task_run_now(request, task_id):
    task = _task(request, task_id)
    check_token_may_run(token_of(request), task)
    try:
        run = task_run(task=task, trigger=TaskRun.Trigger.API, actor=actor_for(request))
    except TaskDisabled as e:
        raise Conflict("disabled", e.message) from None
    return Response(RunSerializer(run).data, status=201)
