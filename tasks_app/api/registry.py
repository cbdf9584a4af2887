"""API v1: credentials in the shapes registry clients read (issue 16): a Docker config.json
and a Kubernetes pull secret, for a task, a plan (or one of its jobs), or a token's own
binding. The answers come from the same per-process cache as /env; 409 as for variables."""

import json

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.decorators import api_view

from tasks_app.api.plumbing import Conflict
from tasks_app.api.variables import ERRORS, NO_STORE, ErrorSerializer
from tasks_app.formats.registry import (
    SECRET_NAME_DEFAULT,
    as_yaml,
    dns_label_problem,
    docker_config,
    kubernetes_secret,
)
from tasks_app.identity.actor import actor_for
from tasks_app.services.delivery import (
    Delivery,
    NotServable,
    plan_served,
    task_served,
    token_scope_served,
)

NOT_FOUND_EMPTY = OpenApiResponse(
    ErrorSerializer, description="Unknown, not visible, or no task with credentials to show."
)
JOB = OpenApiParameter("job", str, description="A job key: its local tasks too.")
SECRET_PARAMETERS = [
    OpenApiParameter(
        "name",
        str,
        description=f"The Secret's name (DNS-1123 label), default {SECRET_NAME_DEFAULT}.",
    ),
    OpenApiParameter("namespace", str, description="Its namespace (DNS-1123 label), optional."),
]
SECRET_RESPONSES: dict = {
    (200, "application/yaml"): OpenApiTypes.STR,
    (200, "application/json"): OpenApiTypes.OBJECT,
    400: OpenApiResponse(ErrorSerializer, description="A name or namespace Kubernetes refuses."),
    **ERRORS,
    404: NOT_FOUND_EMPTY,
}


def _delivery(request, *, task_id=None, plan_key=None) -> Delivery:
    actor = actor_for(request)
    try:
        if task_id is not None:
            return task_served(task_id=task_id, actor=actor).delivery
        if plan_key is not None:
            job_key = request.query_params.get("job") or None
            return plan_served(plan_key=plan_key, job_key=job_key, actor=actor)
        if actor.token is None:
            raise exceptions.ValidationError(
                "This answers for an API token's own plan or job; signed-in people name the "
                "plan: /api/v1/plans/{key}/docker-config."
            )
        return token_scope_served(actor=actor)
    except NotServable as e:
        raise Conflict(e.code, e.detail) from None


def _logins(delivery: Delivery) -> dict[str, str]:
    if not delivery.logins:
        raise exceptions.NotFound("No task with credentials is visible here.")
    return delivery.logins


RENDERED_PER_DELIVERY = 8  # a few names and namespaces; more are rendered each time


def _rendered(delivery: Delivery, key: tuple, render) -> str:
    """A document rendered once per cached delivery: repeated fetches send the same text."""
    text = delivery.rendered.get(key)
    if text is None:
        text = render()
        if len(delivery.rendered) < RENDERED_PER_DELIVERY:
            delivery.rendered[key] = text
    return text


def _docker_config(request, **where):
    delivery = _delivery(request, **where)
    logins = _logins(delivery)
    body = _rendered(delivery, ("docker-config",), lambda: json.dumps(docker_config(logins)))
    return HttpResponse(body, content_type="application/json", headers=NO_STORE)


def _kubernetes_secret(request, **where):
    name = request.query_params.get("name") or SECRET_NAME_DEFAULT
    namespace = request.query_params.get("namespace") or ""
    problems = {
        field: [problem]
        for field, value, what in (("name", name, "name"), ("namespace", namespace, "namespace"))
        if value and (problem := dns_label_problem(value, what))
    }
    if problems:
        raise exceptions.ValidationError(problems)
    secret = kubernetes_secret(
        _logins(_delivery(request, **where)), name=name, namespace=namespace
    )
    if "application/json" in request.headers.get("Accept", ""):
        body, media_type = json.dumps(secret, indent=2) + "\n", "application/json"
    else:
        body, media_type = as_yaml(secret), "application/yaml"
    return HttpResponse(body, content_type=f"{media_type}; charset=utf-8", headers=NO_STORE)


DOCKER_CONFIG: dict = {
    200: OpenApiTypes.OBJECT,
    **ERRORS,
    404: NOT_FOUND_EMPTY,
}


@extend_schema(summary="A task's registry login as a Docker config.json", responses=DOCKER_CONFIG)
@login_not_required
@api_view(["GET"])
def task_docker_config(request, task_id):
    return _docker_config(request, task_id=task_id)


@extend_schema(
    summary="Every registry a plan (or one of its jobs) may see, as a Docker config.json",
    description="One login per registry host; any task without valid credentials makes it "
    "409, as for variables.",
    parameters=[JOB],
    responses=DOCKER_CONFIG,
)
@login_not_required
@api_view(["GET"])
def plan_docker_config(request, plan_key):
    return _docker_config(request, plan_key=plan_key)


@extend_schema(
    summary="Every registry the calling token may see, as a Docker config.json",
    description="For API tokens (the credential helper): the token's job with its plan's "
    "result tasks, or its plan.",
    responses={**DOCKER_CONFIG, 400: OpenApiResponse(ErrorSerializer, description="Not a token.")},
)
@login_not_required
@api_view(["GET"])
def token_docker_config(request):
    return _docker_config(request)


@extend_schema(
    summary="A task's registry login as a Kubernetes image pull secret",
    parameters=SECRET_PARAMETERS,
    responses=SECRET_RESPONSES,
)
@login_not_required
@api_view(["GET"])
def task_kubernetes_secret(request, task_id):
    return _kubernetes_secret(request, task_id=task_id)


@extend_schema(
    summary="Every registry a plan (or one of its jobs) may see, as a Kubernetes pull secret",
    parameters=[JOB, *SECRET_PARAMETERS],
    responses=SECRET_RESPONSES,
)
@login_not_required
@api_view(["GET"])
def plan_kubernetes_secret(request, plan_key):
    return _kubernetes_secret(request, plan_key=plan_key)


@extend_schema(
    summary="Every registry the calling token may see, as a Kubernetes pull secret",
    parameters=SECRET_PARAMETERS,
    responses=SECRET_RESPONSES,
)
@login_not_required
@api_view(["GET"])
def token_kubernetes_secret(request):
    return _kubernetes_secret(request)
