"""Template filters for times: what is left before a moment, said the way people read it."""

from django import template
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


@register.filter
def until(moment) -> str:
    """ "in 3 h 05 min", or "3 min 10 s ago" once the moment has passed."""
    if moment is None:
        return "—"
    seconds = (moment - now()).total_seconds()
    return f"in {duration(seconds)}" if seconds > 0 else f"{duration(seconds)} ago"
