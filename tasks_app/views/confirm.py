"""Asking once before a destructive action, the same way everywhere: the action's URL shows
the question on GET (a page of its own, without JavaScript) and acts on POST. Pages link to
the URL (`<a class="button danger">`); no page posts a destructive action at one click
(tests/views/test_confirmations.py walks the URLs and the templates)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

DELETED_FOR_GOOD = "This cannot be undone. Everything that belongs to it goes with it."


def confirm_page(
    request: HttpRequest,
    *,
    verb: str,
    what: str,
    cancel: str,
    consequence: str = DELETED_FOR_GOOD,
    template: str = "confirm.html",
    **context,
) -> HttpResponse:
    """The question "<verb> <what>?" with what follows, a button named <verb> that posts to
    this same URL, and Cancel back to where the person came from."""
    context.update(
        question=f"{verb} {what}?",
        button=verb,
        consequence=consequence,
        cancel=cancel,
    )
    return render(request, template, context)
