"""Template filters for times: what is left before a moment, said the way people read it."""

from django import template
from django.utils.html import format_html
from django.utils.timezone import now

register = template.Library()


def duration(seconds: float) -> str:
    """3 h 05 min, 4 min 09 s, 12 s."""
    seconds = int(abs(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 48:
        return f"{hours // 24} days"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


# What a countdown's moment is, as its words say it: {kind: (before the moment, after it)}.
# The `countdown` tag hands them to countdown.js, which keeps the text current.
COUNTDOWN_VERBS = {"": ("", ""), "expiry": ("expires ", "expired ")}


@register.filter
def until(moment, kind: str = "") -> str:
    """ "in 3 h 05 min", or "3 min 10 s ago" once the moment has passed; of an expiry
    (`until:"expiry"`), "expires in 3 h 05 min" or "expired 3 min 10 s ago", so that the
    words read right under any heading, a phone's label included."""
    if moment is None:
        return "—"
    before, after = COUNTDOWN_VERBS[kind]
    seconds = (moment - now()).total_seconds()
    if seconds > 0:
        return f"{before}in {duration(seconds)}"
    return f"{after}{duration(seconds)} ago"


@register.simple_tag
def countdown(moment, kind: str = ""):
    """A <time> that countdown.js keeps current, in the words of `until`; "—" without one."""
    if moment is None:
        return "—"
    before, after = COUNTDOWN_VERBS[kind]
    return format_html(
        '<time datetime="{}" data-countdown data-before="{}" data-after="{}" title="{} UTC">'
        "{}</time>",
        moment.isoformat(),
        before,
        after,
        f"{moment:%Y-%m-%d %H:%M:%S}",
        until(moment, kind),
    )
