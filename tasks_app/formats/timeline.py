"""A server-drawn picture of token validity and refreshes (the dashboard's timeline).

One row per task over a window from 24 hours ago to 12 hours ahead: a bar for the
validity of each token fetched in the window (or the current one), a red mark for each
failed run, a diamond for the next refresh and a line for now. The runs of all the
rows come from one query. The task page draws its row in one picture with its label
(tasks/timeline.html); the dashboard draws each row as a strip in its table row
(tasks/timeline_strip.html), the same shapes seen through the row's `strip` viewBox, so a
page draws exactly the rows it lists (the caller bounds them: a page of the dashboard).
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.urls import reverse
from django.utils.html import format_html, format_html_join

from tasks_app.models import TaskRun

BEFORE = timedelta(hours=24)
AFTER = timedelta(hours=12)
LABEL_WIDTH = 200
PLOT_WIDTH = 720
ROW_HEIGHT = 26
TOP = 24
# A strip shows its row's lane with a margin above and below for the marks.
STRIP_MARGIN = 3
# What fits in LABEL_WIDTH at the timeline's 11-unit font (about 6 units a character);
# longer labels end in an ellipsis and show whole on hover.
LABEL_CHARS = 30
# The shapes of a row (Row.shapes), as SVG.
LANE = '<rect x="{}" y="{}" width="{}" height="{}" class="lane"/>'
BAR = '<rect x="{}" y="{}" width="{}" height="{}" class="valid"><title>{}</title></rect>'
FAILURE = '<rect x="{}" y="{}" width="3" height="{}" class="failed"><title>{}</title></rect>'
NEXT_REFRESH = '<path d="M {} {} l 7 7 l -7 7 l -7 -7 z" class="next"><title>{}</title></path>'


def _fitted(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1].rstrip() + "\u2026"


@dataclass
class Row:
    y: int
    label: str  # as drawn, fitted to the label column
    title: str  # the whole label
    url: str
    status: str
    bars: list = field(default_factory=list)  # (x, width, title)
    failures: list = field(default_factory=list)  # (x, title)
    next_refresh: tuple | None = None  # (x, title)

    @property
    def shapes(self) -> str:
        """The row's lane, bars, failure marks and next-refresh diamond, as SVG (drawn here
        rather than by a template: a dashboard page draws 25 rows of them)."""
        height = ROW_HEIGHT - 8
        shapes = [format_html(LANE, LABEL_WIDTH, self.y, PLOT_WIDTH, height)]
        shapes += [format_html(BAR, x, self.y, w, height, title) for x, w, title in self.bars]
        shapes += [format_html(FAILURE, x, self.y - 2, height + 4, t) for x, t in self.failures]
        if self.next_refresh:
            x, title = self.next_refresh
            shapes.append(format_html(NEXT_REFRESH, x, self.y + 2, title))
        return format_html_join("", "{}", ((shape,) for shape in shapes))

    @property
    def strip(self) -> str:
        """The viewBox of the row's plot alone (its lane, marks and the line for now)."""
        height = ROW_HEIGHT - 8 + 2 * STRIP_MARGIN
        return f"{LABEL_WIDTH} {self.y - STRIP_MARGIN} {PLOT_WIDTH} {height}"


def _x(moment, start) -> float:
    span = (BEFORE + AFTER).total_seconds()
    seconds = min(max((moment - start).total_seconds(), 0), span)
    return round(LABEL_WIDTH + PLOT_WIDTH * seconds / span, 1)


def timeline(tasks, *, at) -> dict:
    tasks = list(tasks)
    start, end = at - BEFORE, at + AFTER
    runs = TaskRun.objects.filter(task__in=tasks, started__gte=start).values_list(
        "task_id", "started", "finished", "outcome", "token_expires_at", "error_class"
    )
    by_task: dict[object, list[tuple]] = {}
    for run in runs:
        by_task.setdefault(run[0], []).append(run)
    rows = []
    for i, task in enumerate(tasks):
        row = Row(
            y=TOP + i * ROW_HEIGHT,
            label=_fitted(f"{task.job.plan.key}-{task.job.key} {task}"),
            title=f"{task.job.plan.key}-{task.job.key} {task}",
            url=reverse("task_detail", args=[task.id]),
            status=task.status,
        )
        fetched = False
        for _, started, finished, outcome, expires, error_class in by_task.get(task.id, []):
            moment = finished or started
            if outcome == TaskRun.Outcome.SUCCEEDED and expires:
                fetched = True
                x0, x1 = _x(moment, start), _x(min(expires, end), start)
                title = f"Token fetched {moment:%Y-%m-%d %H:%M}, valid until {expires:%H:%M} UTC"
                row.bars.append((x0, max(x1 - x0, 1), title))
            elif outcome == TaskRun.Outcome.FAILED:
                row.failures.append(
                    (_x(moment, start), f"Run failed {moment:%Y-%m-%d %H:%M}: {error_class}")
                )
        if not fetched and task.expires_at and task.expires_at > start:
            x1 = _x(min(task.expires_at, end), start)
            title = f"Token valid until {task.expires_at:%Y-%m-%d %H:%M} UTC"
            row.bars.append((LABEL_WIDTH, max(x1 - LABEL_WIDTH, 1), title))
        due = task.refresh_due_at
        if task.enabled and due and start <= due <= end:
            row.next_refresh = (_x(due, start), f"Next refresh {due:%Y-%m-%d %H:%M} UTC")
        rows.append(row)
    ticks = []
    for hours in range(-24, 13, 6):
        moment = at + timedelta(hours=hours)
        label = "now" if hours == 0 else f"{hours:+d} h"
        ticks.append((_x(moment, start), label))
    return {
        "rows": rows,
        "ticks": ticks,
        "now_x": _x(at, start),
        "width": LABEL_WIDTH + PLOT_WIDTH + 30,
        "height": TOP + len(rows) * ROW_HEIGHT + 8,
        "plot_left": LABEL_WIDTH,
        "plot_right": LABEL_WIDTH + PLOT_WIDTH,
        "row_height": ROW_HEIGHT - 8,
    }
