"""The API can be found from the portal (issue 24): a reference page rendered from the
portal's own OpenAPI document, linked from every page's footer and the API tokens page,
and a "use a token" example there with a placeholder, never a token."""

import json
import re
import subprocess

import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from tasks_app.formats.snippets import TOKEN_PLACEHOLDER
from tasks_app.middleware import CONTENT_SECURITY_POLICY
from tasks_app.models import ApiToken, Role
from tests.factories import (
    PASSWORD,
    api_token,
    give_credential,
    make_connector,
    make_job,
    make_plan,
    make_task,
    make_team,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def vic(db):
    make_team("Team A", vic=Role.VIEWER)
    return "vic"


def test_signed_out_people_are_sent_to_sign_in(client):
    response = client.get("/api-reference/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/api-reference/"


def test_every_operation_of_the_schema_is_on_the_page(client, vic):
    client.login(username=vic, password=PASSWORD)
    response = client.get("/api-reference/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    page = response.content.decode()
    document = SchemaGenerator().get_schema(request=None, public=True)
    for path, item in document["paths"].items():
        for method, op in item.items():
            assert f'id="op-{op["operationId"]}"' in page, (method, path)
            assert f'href="#op-{op["operationId"]}"' in page
            if "summary" in op:
                assert op["summary"].replace("'", "&#x27;") in page
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert "/api/v1/plans/{plan_key}/env" in page
    assert 'href="#schema-Variables"' in page  # a response's type links to its schema
    assert "<li><code>push_pull</code> - Push and pull</li>" in page  # CommonMark rendered
    assert "an API token (Authorization: Bearer)" in page
    assert "<script" not in page  # nothing for the CSP to allow
    assert 'href="/api/v1/schema/?format=json"' in page


def test_a_person_without_a_team_reads_it_too(client):
    make_user("nobody")
    client.login(username="nobody", password=PASSWORD)
    assert client.get("/api-reference/").status_code == 200


def test_the_raw_document_the_page_links_to_answers_signed_in_people(client, vic):
    client.login(username=vic, password=PASSWORD)
    json_doc = client.get("/api/v1/schema/?format=json")
    assert json_doc.status_code == 200
    assert json.loads(json_doc.content)["info"]["title"] == "ECR Portal API"
    assert client.get("/api/v1/schema/?format=yaml").content.startswith(b"openapi: 3")


def test_every_signed_in_page_links_to_the_reference_in_its_footer(client, vic):
    client.login(username=vic, password=PASSWORD)
    page = client.get("/").content.decode()
    assert re.search(r'<footer class="site-footer">\s*<a href="/api-reference/">', page)
    client.logout()
    assert "site-footer" not in client.get("/login/").content.decode()


def test_the_tokens_page_links_to_the_reference_and_shows_a_placeholder_example(client, vic):
    client.login(username=vic, password=PASSWORD)
    page = client.get("/tokens/").content.decode()
    assert 'href="/api-reference/">API reference</a>' in page
    assert f"export ECRPORTAL_TOKEN=&#x27;{TOKEN_PLACEHOLDER}&#x27;" in page
    assert (
        "curl -fsS -H &quot;Authorization: Bearer $ECRPORTAL_TOKEN&quot; "
        "&#x27;http://127.0.0.1:8000/api/v1/plans/PLAN-KEY/variables&#x27;" in page
    )
    assert "Put your plan's key in place of <code>PLAN-KEY</code>" in page


def test_the_example_names_the_newest_active_tokens_binding_never_a_token(client):
    team = make_team("Team A", alice=Role.EDITOR)
    plan = make_plan(team)
    job = make_job(plan)
    raws = [api_token(plan), api_token(plan, job)]
    client.login(username="alice", password=PASSWORD)
    page = client.get("/tokens/").content.decode()
    assert "/api/v1/plans/WEB-BUILD/variables?job=BUILD&#x27;" in page
    assert "PLAN-KEY" not in page
    for raw in raws:
        assert raw not in page
        assert raw[len("ecrp_") + 8 :] not in page  # not even past the hint
    ApiToken.objects.filter(job=job).update(revoked_at="2000-01-01T00:00:00Z")
    page = client.get("/tokens/").content.decode()
    assert "/api/v1/plans/WEB-BUILD/variables&#x27;" in page


@pytest.mark.django_db(transaction=True)
def test_the_example_run_with_a_real_token_prints_the_variables(client, live_server, settings):
    settings.SITE_URL = live_server.url
    team = make_team("Team A", alice=Role.EDITOR)
    plan = make_plan(team)
    task = make_task(make_job(plan), make_connector(team), scope="result", namespace="ns")
    give_credential(task, password="Sentinel-Example-Pw")
    raw = api_token(plan)
    client.login(username="alice", password=PASSWORD)
    page = client.get("/tokens/").content.decode()
    code = re.search(r'<pre class="code" id="token-example">(.*?)</pre>', page, re.S)
    assert code is not None
    script = (
        code.group(1).replace("&#x27;", "'").replace("&quot;", '"').replace(TOKEN_PLACEHOLDER, raw)
    )
    out = subprocess.run(
        ["bash", "-e"], input=script, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert json.loads(out)["variables"]["ns.ecr.password"] == "Sentinel-Example-Pw"


def test_no_description_in_the_document_is_a_developers_note():
    """A serializer without its own docstring inherits its base's (how it validates), which
    the reference page would show people as the description of a resource."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    texts = [s.get("description", "") for s in schema["components"]["schemas"].values()]
    for path in schema["paths"].values():
        texts += [op.get("description", "") for op in path.values() if isinstance(op, dict)]
    internal = re.compile(r"full_clean|serializer|\binstance\b|queryset|_[a-z]+\(", re.I)
    assert [t for t in texts if internal.search(t)] == []


def test_the_created_page_shows_how_to_use_the_new_token_with_its_binding(client):
    """The token shows once, in its own box; the example beside it names its binding and
    keeps the placeholder, so that a copied example never carries the token."""
    team = make_team("Team A", alice=Role.EDITOR)
    plan = make_plan(team)
    job = make_job(plan)
    client.login(username="alice", password=PASSWORD)
    response = client.post(reverse("token_create"), {"name": "ci", "binding": f"job:{job.id}"})
    assert response.status_code == 200, response.content
    page = response.content.decode()
    raw = re.search(r'<pre class="code" id="new-token">(ecrp_[\w-]+)</pre>', page)[1]
    example = re.search(r'<pre class="code" id="token-example">(.*?)</pre>', page, re.S)[1]
    assert "/api/v1/plans/WEB-BUILD/variables?job=BUILD" in example
    assert TOKEN_PLACEHOLDER in example
    assert raw not in example
    assert 'href="/api-reference/"' in page
