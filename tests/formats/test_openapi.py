"""formats/openapi.py: what the API reference page shows of an OpenAPI document."""

from tasks_app.formats.openapi import Tag, reference, type_of

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "T", "version": "1", "description": "Hello <script>alert(1)</script>"},
    "paths": {
        "/a/{id}": {
            "get": {
                "operationId": "a_read",
                "summary": "Read an A",
                "description": "[x](javascript:alert(1)) and `code`",
                "tags": ["as"],
                "parameters": [
                    {"in": "path", "name": "id", "required": True, "schema": {"type": "string"}},
                    {"in": "query", "name": "shell", "schema": {"enum": ["bash", "cmd"]}},
                ],
                "security": [{"apiToken": []}, {"cookieAuth": []}],
                "responses": {
                    "404": {"description": "Gone"},
                    "200": {
                        "description": "",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/A"}}
                        },
                    },
                },
            },
            "delete": {"operationId": "a_delete", "responses": {"204": {"description": ""}}},
        }
    },
    "components": {
        "securitySchemes": {
            "apiToken": {"type": "http", "scheme": "bearer", "description": "A token."},
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
        },
        "schemas": {
            "A": {
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "format": "uuid", "readOnly": True},
                    "tags": {"type": "array", "items": {"$ref": "#/components/schemas/B"}},
                    "extra": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "B": {"enum": ["x", "y"], "type": "string"},
        },
    },
}


def test_operations_by_tag_with_their_parameters_answers_and_auth():
    ref = reference(DOCUMENT)
    assert [t.name for t in ref.tags] == ["as", "other"]  # untagged: "other"
    tag = ref.tags[0]
    [op] = [o for o in tag.operations if o.method == "GET"]
    assert (op.anchor, op.path, op.summary) == ("op-a_read", "/a/{id}", "Read an A")
    assert op.auth == ("an API token (Authorization: Bearer)", "a signed-in session")
    assert [(p.name, p.required, p.notes) for p in op.parameters] == [
        ("id", True, ("in path",)),
        ("shell", False, ("in query",)),
    ]
    assert op.parameters[1].type.text == "one of bash, cmd"
    assert [a.status for a in op.answers] == ["200", "404"]
    assert op.answers[0].bodies[0].type.anchor == "schema-A"
    assert [o.method for o in ref.tags[1].operations] == ["DELETE"]


def test_schemas_show_fields_types_and_flags():
    ref = reference(DOCUMENT)
    a, b = ref.schemas
    fields = {f.name: f for f in a.fields}
    assert fields["id"].required
    assert fields["id"].type.text == "string (uuid)"
    assert fields["id"].notes == ("read-only",)
    assert (fields["tags"].type.text, fields["tags"].type.ref) == ("array of B", "B")
    assert fields["extra"].type.text == "map of string"
    assert b.enum == ("x", "y")
    assert type_of({}).text == "any"


def test_descriptions_are_markdown_with_raw_html_escaped_and_unsafe_links_refused():
    ref = reference(DOCUMENT)
    assert "<script>" not in ref.description
    assert "&lt;script&gt;" in ref.description
    description = ref.tags[0].operations[0].description
    assert "<code>code</code>" in description
    assert 'href="javascript' not in description


def test_a_tags_heading_reads_as_words():
    assert Tag("docker-config").title == "Docker config"
    assert Tag("kubernetes-secret").title == "Kubernetes secret"
    assert Tag("tasks").title == "Tasks"
