"""The "Use the credentials" block of the task, job and plan pages (templates/tasks/usage.html):
a tab per shell, the Kubernetes and Docker config tabs, and the JSON form, all from the
snippets of formats/snippets.py. Values are masked unless they were revealed."""

import json
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse

from tasks_app.formats.snippets import (
    SHELL_LABELS,
    ci_snippet,
    docker_config_snippet,
    env_snippet,
    kubernetes_snippet,
    mapping_snippet,
    with_query,
)
from tasks_app.lib import ecr_public
from tasks_app.lib.crypto import MASK
from tasks_app.models import Job, Plan, TaskConfig
from tasks_app.rules.generated_variables import ENDPOINT_DOMAIN, JSON, env_name, variable_key


@dataclass(frozen=True)
class Endpoints:
    """Where the API serves one consumer's credentials: a task, a plan, or a job of it."""

    env: str
    kubernetes_secret: str
    docker_config: str
    single_task: bool = False

    @classmethod
    def of_task(cls, task: TaskConfig) -> "Endpoints":
        site = str(settings.SITE_URL)
        return cls(
            env=site + reverse("api_task_env", args=[task.id]),
            kubernetes_secret=site + reverse("api_task_kubernetes_secret", args=[task.id]),
            docker_config=site + reverse("api_task_docker_config", args=[task.id]),
            single_task=True,
        )

    @classmethod
    def of_scope(cls, plan: Plan, job: Job | None = None) -> "Endpoints":
        site = str(settings.SITE_URL)

        def url(name: str) -> str:
            address = site + reverse(name, args=[plan.key])
            return with_query(address, job=job.key) if job is not None else address

        return cls(
            env=url("api_plan_env"),
            kubernetes_secret=url("api_plan_kubernetes_secret"),
            docker_config=url("api_plan_docker_config"),
        )


def masked_values(results) -> dict[str, str]:
    """The generated variables by key, a masked one as the mask unless its value is there."""
    return {r.key: MASK if r.masked and not r.value else r.value for r in results}


def usage(
    *,
    values: dict[str, str],
    tasks: Sequence[TaskConfig],
    endpoints: Endpoints,
    revealed: bool,
) -> dict:
    """The tabs and the JSON form for these tasks' variables (values: masked or revealed)."""
    namespaces = list(dict.fromkeys(task.namespace for task in tasks))
    hosts = list(
        dict.fromkeys(
            values.get(variable_key(task.namespace, ENDPOINT_DOMAIN))
            or (
                ecr_public.HOST
                if task.public
                else f"<account>.dkr.ecr.{task.region or '<region>'}.amazonaws.com"
            )
            for task in tasks
        )
    )
    shells = [
        {
            "id": shell,
            "label": label,
            "mappings": [
                {"namespace": namespace, "code": mapping_snippet(shell, namespace)}
                for namespace in namespaces
            ],
            "values": env_snippet(shell, values) if values else "",
            "ci": ci_snippet(shell, env_url=endpoints.env, namespaces=namespaces),
        }
        for shell, label in SHELL_LABELS.items()
    ]
    download_url = str(settings.SITE_URL) + reverse(
        "download", args=["docker-credential-ecrportal"]
    )
    formats = [
        {
            "id": "kubernetes",
            "label": "Kubernetes",
            "intro": "An image pull secret (type kubernetes.io/dockerconfigjson), applied with "
            "kubectl; docs/kubernetes.md has a CronJob that keeps it fresh.",
            "code": kubernetes_snippet(secret_url=endpoints.kubernetes_secret),
        },
        {
            "id": "docker-config",
            "label": "Docker config",
            "intro": "A config.json that docker, podman, buildah, skopeo, crane and helm read, "
            "or the portal's Docker credential helper.",
            "code": docker_config_snippet(
                config_url=endpoints.docker_config, download_url=download_url, hosts=hosts
            ),
        },
    ]
    first = namespaces[0] if namespaces else ""
    return {
        "formats": formats,
        "shells": shells,
        "json": json.dumps(values, indent=2) if values else "",
        "json_env": env_name(variable_key(first, JSON)) if first else "",
        "json_key": variable_key(first, JSON) if first else "",
        "revealed": revealed,
        "single_task": len(tasks) == 1 and endpoints.single_task,
    }


def revealed_response(response, delivery):
    """A page that shows revealed values (`delivery` not None) is never cached."""
    if delivery is not None:
        response["Cache-Control"] = "no-store"
    return response
