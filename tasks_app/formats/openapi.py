"""The API reference page (issue 24): an OpenAPI 3 document, as drf-spectacular makes it, turned
into what templates/api/reference.html shows. Pure: a dict in, plain data out; descriptions
are CommonMark rendered by markdown-it-py with raw HTML off (escaped) and unsafe links refused."""

from dataclasses import dataclass, field

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

METHODS = ("get", "post", "put", "patch", "delete")
_REF_PREFIX = "#/components/schemas/"
_markdown = MarkdownIt("commonmark", {"html": False})


def markdown(text: str) -> SafeString:
    """CommonMark as HTML: raw HTML in the text is escaped, javascript: links refused."""
    return mark_safe(_markdown.render(text or ""))  # noqa: S308 - markdown-it escapes


def schema_anchor(name: str) -> str:
    return f"schema-{name}"


@dataclass(frozen=True)
class TypeRef:
    """A schema's type in words, and the component it names (for a link), if any."""

    text: str
    ref: str = ""

    @property
    def anchor(self) -> str:
        return schema_anchor(self.ref) if self.ref else ""


def type_of(schema: dict) -> TypeRef:
    if not schema:
        return TypeRef("any")
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(_REF_PREFIX)
        return TypeRef(name, name)
    if "enum" in schema:
        return TypeRef("one of " + ", ".join(str(value) for value in schema["enum"]))
    kind = schema.get("type", "object")
    if kind == "array":
        items = type_of(schema.get("items", {}))
        return TypeRef(f"array of {items.text}", items.ref)
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        values = type_of(schema["additionalProperties"])
        return TypeRef(f"map of {values.text}", values.ref)
    return TypeRef(f"{kind} ({schema['format']})" if "format" in schema else kind)


@dataclass(frozen=True)
class Field:
    name: str
    type: TypeRef
    required: bool
    description: SafeString
    notes: tuple[str, ...] = ()  # where (query, path), read-only, write-only, nullable


@dataclass(frozen=True)
class Body:
    media_type: str
    type: TypeRef


@dataclass(frozen=True)
class Answer:
    status: str
    description: SafeString
    bodies: tuple[Body, ...]


@dataclass(frozen=True)
class Operation:
    anchor: str
    method: str
    path: str
    summary: str
    description: SafeString
    auth: tuple[str, ...]
    parameters: tuple[Field, ...]
    request: tuple[Body, ...]
    answers: tuple[Answer, ...]


@dataclass(frozen=True)
class Schema:
    name: str
    anchor: str
    description: SafeString
    fields: tuple[Field, ...]
    enum: tuple[str, ...]


@dataclass(frozen=True)
class Tag:
    name: str
    operations: list[Operation] = field(default_factory=list)

    @property
    def title(self) -> str:
        """The heading people read: "docker-config" as "Docker config"."""
        return self.name.replace("-", " ").replace("_", " ").capitalize()


@dataclass(frozen=True)
class Reference:
    title: str
    version: str
    description: SafeString
    auth: dict[str, SafeString]
    tags: list[Tag]
    schemas: list[Schema]


def _bodies(content: dict) -> tuple[Body, ...]:
    return tuple(
        Body(media_type, type_of(media.get("schema", {}))) for media_type, media in content.items()
    )


def _parameter(parameter: dict) -> Field:
    schema = parameter.get("schema", {})
    return Field(
        name=parameter["name"],
        type=type_of(schema),
        required=bool(parameter.get("required")),
        description=markdown(parameter.get("description", "")),
        notes=(f"in {parameter.get('in', 'query')}",),
    )


def _auth_names(security: list[dict], schemes: dict) -> tuple[str, ...]:
    words = {"http": "an API token (Authorization: Bearer)", "apiKey": "a signed-in session"}
    names = []
    for requirement in security:
        for name in requirement:
            scheme = schemes.get(name, {})
            names.append(words.get(scheme.get("type", ""), name))
    return tuple(dict.fromkeys(names))


def _operation(path: str, method: str, op: dict, schemes: dict) -> Operation:
    answers = tuple(
        Answer(status, markdown(answer.get("description", "")), _bodies(answer.get("content", {})))
        for status, answer in sorted(op.get("responses", {}).items())
    )
    return Operation(
        anchor=f"op-{op.get('operationId') or method + path}",
        method=method.upper(),
        path=path,
        summary=op.get("summary", ""),
        description=markdown(op.get("description", "")),
        auth=_auth_names(op.get("security", []), schemes),
        parameters=tuple(_parameter(p) for p in op.get("parameters", [])),
        request=_bodies(op.get("requestBody", {}).get("content", {})),
        answers=answers,
    )


def _schema(name: str, schema: dict) -> Schema:
    required = set(schema.get("required", []))
    fields = []
    for key, prop in schema.get("properties", {}).items():
        notes = tuple(
            note
            for flag, note in (
                ("readOnly", "read-only"),
                ("writeOnly", "write-only"),
                ("nullable", "may be null"),
            )
            if prop.get(flag)
        )
        fields.append(
            Field(
                name=key,
                type=type_of(prop),
                required=key in required,
                description=markdown(prop.get("description", "")),
                notes=notes,
            )
        )
    return Schema(
        name=name,
        anchor=schema_anchor(name),
        description=markdown(schema.get("description", "")),
        fields=tuple(fields),
        enum=tuple(str(value) for value in schema.get("enum", ())),
    )


def reference(document: dict) -> Reference:
    """The document's operations by tag (in the document's order of paths), its schemas by
    name, and how callers authenticate."""
    components = document.get("components", {})
    schemes = components.get("securitySchemes", {})
    tags: dict[str, Tag] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                op = item[method]
                name = (op.get("tags") or ["other"])[0]
                tags.setdefault(name, Tag(name)).operations.append(
                    _operation(path, method, op, schemes)
                )
    info = document.get("info", {})
    return Reference(
        title=info.get("title", "API"),
        version=str(info.get("version", "")),
        description=markdown(info.get("description", "")),
        auth={
            _auth_names([{name: []}], schemes)[0]: markdown(scheme.get("description", ""))
            for name, scheme in schemes.items()
        },
        tags=list(tags.values()),
        schemas=[
            _schema(name, schema) for name, schema in sorted(components.get("schemas", {}).items())
        ],
    )
