"""The API reference page (`/api-reference/`), attacked (issue 24).

The attacker: anyone on the network (the page is for signed-in people), and whoever writes
what the OpenAPI document says: a description, a summary, a parameter's or schema's name,
an enum value (a contributor, a dependency's schema hook). What they control: every string
of the document formats/openapi.py turns into the page. What guards it: the login
middleware; markdown-it-py with raw HTML off and its link validation (javascript:, vbscript:,
file: and non-image data: refused); Django's escaping of everything else; the portal's
Content-Security-Policy (no inline script) on the page.
"""

import re
from html.parser import HTMLParser

import pytest
from django.template.loader import render_to_string
from django.test import Client

from tasks_app.formats.openapi import markdown, reference
from tasks_app.middleware import CONTENT_SECURITY_POLICY
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LINKS = [
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript&#58;alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](vbscript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x]\n\n[x]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "![x](javascript:alert(1))",
]
RAW_HTML = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=//evil.example></iframe>",
    "*a*<style>body{display:none}</style>",
    '[a](https://example.com "t\\" onmouseover=alert(1) x=\\"")',
]


class _Unsafe(HTMLParser):
    """What in HTML could run script, as a browser parses it: such elements, event-handler
    attributes, links and sources to script schemes."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "style", "object", "embed", "base", "form"):
            self.found.append(tag)
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}")
            if name in ("href", "src", "action", "formaction") and re.match(
                r"(javascript|vbscript|file|data:text)", re.sub(r"\s", "", value or "").lower()
            ):
                self.found.append(f"{tag} {name}={value}")


def _unsafe(html: str) -> list[str]:
    parser = _Unsafe()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize("text", LINKS + RAW_HTML)
def test_a_description_cannot_carry_script(text):
    assert _unsafe(markdown(text)) == []


def test_the_walk_sees_script():
    assert _unsafe('<p><a href="javascript:alert(1)">x</a><img src=x onerror=alert(1)></p>')


def test_every_string_of_a_hostile_document_is_escaped_on_the_page(rf):
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    prose = " ".join(LINKS + RAW_HTML)
    document = {
        "info": {"title": hostile, "version": hostile, "description": prose},
        "paths": {
            f"/api/v1/{hostile}": {
                "get": {
                    "operationId": hostile,
                    "tags": [hostile],
                    "summary": hostile,
                    "description": prose,
                    "parameters": [
                        {"name": hostile, "in": hostile, "description": prose, "schema": {}}
                    ],
                    "responses": {
                        "200": {
                            "description": prose,
                            "content": {hostile: {"schema": {"$ref": f"#/x/{hostile}"}}},
                        }
                    },
                }
            }
        },
        "components": {
            "securitySchemes": {hostile: {"type": hostile, "description": prose}},
            "schemas": {
                hostile: {
                    "description": prose,
                    "enum": [hostile],
                    "properties": {hostile: {"description": prose, "enum": [hostile]}},
                }
            },
        },
    }
    request = rf.get("/api-reference/")
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    page = render_to_string("api/reference.html", {"reference": reference(document)}, request)
    main = page.split('<div class="api-reference">', 1)[1]
    assert _unsafe(main) == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in main  # shown as text


def test_anonymous_people_are_sent_to_sign_in():
    answer = Client().get("/api-reference/")
    assert answer.status_code == 302
    assert answer["Location"].startswith("/accounts/login/") or "login" in answer["Location"]
    assert b"api-reference" not in answer.content


def test_the_page_has_the_portals_policy_and_no_script_of_its_own(alice):
    client = Client()
    client.login(username="alice", password=PASSWORD)
    answer = client.get("/api-reference/")
    assert answer.status_code == 200
    assert answer["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in answer["Content-Security-Policy"].split("script-src")[1]
    main = answer.content.decode().split('<div class="api-reference">', 1)[1]
    assert _unsafe(main) == []
    assert "<script" not in main
