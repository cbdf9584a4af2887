"""The API reference: the portal's own OpenAPI document, rendered on the server (no script,
nothing from a CDN, within the portal's Content-Security-Policy), for signed-in people."""

from django.shortcuts import render
from drf_spectacular.generators import SchemaGenerator

from tasks_app.formats.openapi import reference


def api_reference(request):
    # The public document: the same for every caller, as /api/v1/schema/ serves it.
    document = SchemaGenerator().get_schema(request=None, public=True)
    return render(request, "api/reference.html", {"reference": reference(document)})
