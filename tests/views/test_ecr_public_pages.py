"""Pages of an Amazon ECR Public task (issue 25 §4): before its first run, the Docker config
tab already names public.ecr.aws for the credential helper; the task page and the
recommended-policy page show ECR Public's own actions."""

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from tasks_app.models import Role, TaskConfig
from tests.factories import make_connector, make_job, make_plan, make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    team = make_team("Platform", alice=Role.EDITOR)
    client = Client()
    client.force_login(team.members.get(username="alice"))
    return team, client


def test_a_public_task_page_names_public_ecr_aws_before_its_first_run(alice):
    team, client = alice
    task = TaskConfig(
        job=make_job(make_plan(team)), connector=make_connector(team), registry="public"
    )
    task.full_clean()
    task.save()
    page = client.get(reverse("task_detail", args=[task.pk])).content.decode()
    helpers = re.search(r"\{&quot;credHelpers&quot;: \{.*?\}\}", page)
    assert helpers, "the Docker config tab's credHelpers line"
    config = json.loads(helpers.group(0).replace("&quot;", '"'))
    assert config == {"credHelpers": {"public.ecr.aws": "ecrportal"}}
    assert "dkr.ecr" not in helpers.group(0)
    assert "sts:GetServiceBearerToken" in page
    assert "AmazonElasticContainerRegistryPublicPowerUser" in page


def test_the_policy_page_shows_both_registries_documents(alice):
    _, client = alice
    page = client.get(reverse("ecr_policy")).content.decode()
    for managed in (
        "AmazonEC2ContainerRegistryPowerUser",
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonElasticContainerRegistryPublicPowerUser",
        "AmazonElasticContainerRegistryPublicReadOnly",
    ):
        assert managed in page
    ids = re.findall(r'<pre class="code" id="([^"]+)"', page)
    assert sorted(ids) == sorted(
        f"ecr-policy-{r}-{a}" for r in ("private", "public") for a in ("push_pull", "pull")
    )
