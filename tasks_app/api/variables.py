"""API v1: credentials for CI jobs (SPEC §8.2). Errors are {"error", "detail"}."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from tasks_app.api.plumbing import Conflict
from tasks_app.formats.snippets import SHELLS, env_snippet
from tasks_app.identity.actor import actor_for
from tasks_app.models import TaskRun
from tasks_app.policy.access import require_token_may_run
from tasks_app.services.delivery import (
    Delivery,
    NotServable,
    Served,
    plan_served,
    task_for_actor,
    task_served,
)
from tasks_app.services.runs import TaskDisabled, task_run

NO_STORE = {"Cache-Control": "no-store"}


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A code: unauthenticated, not_found, expired, ...")
    detail = serializers.JSONField(help_text="What went wrong, in words (or per field).")


class VariablesSerializer(serializers.Serializer):
    variables = serializers.DictField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField(required=False)


# What VariablesSerializer(body).data gives, without building the serializer and deep-copying
# its fields on every request (a fifth of a cached read's CPU): the serializer stays the
# schema, and tests/api/test_api.py checks that both agree.
_EXPIRES_AT = VariablesSerializer().fields["expires_at"]


def variables_body(*, variables: dict, expires_at, status: str | None = None) -> dict:
    body = {
        "variables": {str(key): str(value) for key, value in variables.items()},
        "expires_at": None if expires_at is None else _EXPIRES_AT.to_representation(expires_at),
    }
    if status is not None:
        body["status"] = str(status)
    return body


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
            "aws_answer",
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


def _served(request, task_id) -> Served:
    try:
        return task_served(task_id=task_id, actor=actor_for(request))
    except NotServable as e:
        raise Conflict(e.code, e.detail) from None


def _shell(request) -> str:
    shell = request.query_params.get("shell", "")
    if shell not in SHELLS:
        raise exceptions.ValidationError({"shell": [f"Choose one of {', '.join(SHELLS)}."]})
    return shell


def _plan_delivery(request, plan_key) -> Delivery:
    try:
        return plan_served(
            plan_key=plan_key, job_key=request.query_params.get("job"), actor=actor_for(request)
        )
    except NotServable as e:
        raise Conflict(e.code, e.detail) from None


@extend_schema(
    summary="A task's variables",
    responses={200: VariablesSerializer, **ERRORS},
)
@login_not_required
@api_view(["GET"])
def task_variables(request, task_id):
    served = _served(request, task_id)
    delivery = served.delivery
    body = variables_body(
        variables=delivery.values, expires_at=delivery.expires_at, status=served.status
    )
    return Response(body, headers=NO_STORE)


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
    shell = _shell(request)
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
    delivery = _plan_delivery(request, plan_key)
    body = variables_body(variables=delivery.values, expires_at=delivery.expires_at)
    return Response(body, headers=NO_STORE)


@extend_schema(
    summary="What a plan, or one of its jobs, may see, as an environment snippet",
    parameters=[
        OpenApiParameter("shell", enum=list(SHELLS), required=True),
        OpenApiParameter(
            "job", str, description="A job key: its local variables too, not only the plan's."
        ),
    ],
    responses={
        (200, "text/plain"): OpenApiTypes.STR,
        400: OpenApiResponse(ErrorSerializer, description="Unknown shell."),
        **ERRORS,
    },
)
@login_not_required
@api_view(["GET"])
def plan_env(request, plan_key):
    delivery = _plan_delivery(request, plan_key)  # an unknown plan first: 404 as for a task
    shell = _shell(request)
    text = env_snippet(shell, delivery.values)
    return HttpResponse(text, content_type="text/plain; charset=utf-8", headers=NO_STORE)


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
    actor = actor_for(request)
    task = task_for_actor(task_id=task_id, actor=actor)
    require_token_may_run(actor.token, task)
    try:
        run = task_run(task=task, trigger=TaskRun.Trigger.API, actor=actor)
    except TaskDisabled as e:
        raise Conflict("disabled", e.message) from None
    return Response(RunSerializer(run).data, status=201)
