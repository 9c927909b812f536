"""The managers' sync dashboard, inside the admin, built of unfold's components; its charts
are unfold's bar charts (Chart.js, bundled in unfold's static files)."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from sync import selectors, services
from sync.connectors.inbound import MAX_BODY
from sync.models import Destination, SyncRun

VIEW_PERMISSION = "sync.view_contactsyncstate"
PUSH_PERMISSION = "sync.push_contacts"


def chart_options(x_title: str) -> str:
    """Chart.js options for unfold's bar chart component (its `options`, JSON: no functions):
    both axes titled, whole-number ticks from zero, at most 8 labels on the x axis, no
    legend (the card's caption says what is counted)."""
    axis_title = {"display": True, "color": "#9ca3af", "font": {"size": 11}}
    return json.dumps(
        {
            "responsive": True,
            "maintainAspectRatio": False,
            "animation": False,
            "plugins": {"legend": {"display": False}, "tooltip": {"enabled": True}},
            "scales": {
                "x": {
                    "title": {**axis_title, "text": x_title},
                    "ticks": {"color": "#9ca3af", "maxTicksLimit": 8, "maxRotation": 0},
                    "grid": {"display": False},
                },
                "y": {
                    "beginAtZero": True,
                    "title": {**axis_title, "text": "pushes"},
                    "ticks": {"color": "#9ca3af", "precision": 0, "maxTicksLimit": 5},
                },
            },
        }
    )


HOUR_CHART_OPTIONS = chart_options("hour (local time)")
DAY_CHART_OPTIONS = chart_options("day")


def bar_chart(series: dict, label: str) -> str:
    """A selector's series (`labels`, `values`) as the JSON unfold's bar chart component reads
    (Chart.js's `data`): one dataset, in the theme's primary colour, with its y axis shown."""
    return json.dumps(
        {
            "labels": series["labels"],
            "datasets": [
                {
                    "label": label,
                    "data": series["values"],
                    "backgroundColor": "var(--color-primary-600)",
                    "maxBarThickness": 14,
                    "displayYAxis": True,
                    "maxTicksXLimit": 8,
                }
            ],
        }
    )


def inbound_chart_options() -> str:
    """The inbound chart's options: as the push charts', with a legend (a line per platform)
    and the y axis counting events."""
    options = json.loads(chart_options("hour (local time)"))
    options["plugins"]["legend"] = {
        "display": True,
        "position": "bottom",
        "labels": {"color": "#9ca3af", "usePointStyle": True, "boxWidth": 6, "boxHeight": 6},
    }
    options["scales"]["y"]["title"]["text"] = "events received"
    # lines without a dot per hour (48 of them); a point shows under the pointer
    options["elements"] = {"point": {"radius": 0, "hoverRadius": 4}, "line": {"borderWidth": 2}}
    options["interaction"] = {"mode": "index", "intersect": False}
    return json.dumps(options)


INBOUND_CHART_OPTIONS = inbound_chart_options()
# One colour per line, in the order of the series (platforms sorted by slug).
LINE_COLOURS = ["var(--color-primary-600)", "#f59e0b", "#10b981", "#ef4444", "#6366f1"]


def inbound_line_chart(chart: dict) -> str:
    """The selector's inbound series as the JSON unfold's line chart component reads: one
    dataset per platform, its y axis shown."""
    return json.dumps(
        {
            "labels": chart["labels"],
            "datasets": [
                {
                    "label": series["label"],
                    "data": series["values"],
                    "borderColor": LINE_COLOURS[index % len(LINE_COLOURS)],
                    "backgroundColor": LINE_COLOURS[index % len(LINE_COLOURS)],
                    "displayYAxis": True,
                    "maxTicksXLimit": 8,
                }
                for index, series in enumerate(chart["series"])
            ],
        }
    )


def _context(request, admin_site):
    data = selectors.dashboard()
    for row in data["rows"]:
        row["hour_chart_data"] = bar_chart(row["hour_chart"], "Pushes")
        row["day_chart_data"] = bar_chart(row["day_chart"], "Pushes")
    data["inbound"]["hour_chart_data"] = inbound_line_chart(data["inbound"]["hour_chart"])
    return {
        **admin_site.each_context(request),
        "title": "Sync dashboard",
        "can_push": request.user.has_perm(PUSH_PERMISSION),
        "can_view_destinations": request.user.has_perm("sync.view_destination"),
        "hour_chart_options": HOUR_CHART_OPTIONS,
        "day_chart_options": DAY_CHART_OPTIONS,
        "inbound_chart_options": INBOUND_CHART_OPTIONS,
        **data,
    }


def dashboard(request, admin_site):
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    return TemplateResponse(request, "admin/sync/dashboard.html", _context(request, admin_site))


def dashboard_runs(request, admin_site):
    """The dashboard's live part (overview table, queue, workers, running pushes), polled by
    the dashboard so that its counters and progress bars move. Opened directly (not by the
    dashboard's script, which says so in a header), it is the whole dashboard."""
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    polled = request.headers.get("X-Sync-Fragment") == "1"
    template = "admin/sync/dashboard_runs.html" if polled else "admin/sync/dashboard.html"
    return TemplateResponse(request, template, _context(request, admin_site))


@require_POST
@permission_required(PUSH_PERMISSION, raise_exception=True)
def retry_failed(request, destination_id):
    destination = get_object_or_404(Destination, pk=destination_id, enabled=True)
    queued = services.contacts_retry_failed(user_id=request.user.pk, destination=destination)
    messages.success(request, f"{destination}: {queued} failed contacts queued again.")
    return redirect("sync_dashboard")


@require_POST
@permission_required(PUSH_PERMISSION, raise_exception=True)
def repush_drifted(request, destination_id):
    destination = get_object_or_404(Destination, pk=destination_id, enabled=True)
    queued = services.drifted_repush(destinations=[destination], user_id=request.user.pk)
    messages.success(
        request, f"{destination}: {queued} drifted contacts queued to be pushed again."
    )
    return redirect("sync_dashboard")


@require_POST
@permission_required(PUSH_PERMISSION, raise_exception=True)
def cancel_run(request, run_id):
    run = get_object_or_404(SyncRun, pk=run_id)
    services.run_cancel(run=run)
    messages.success(request, f"Run {run.pk} cancelled; what was not sent stays as it was.")
    return redirect("sync_dashboard")


# ------------------------------------------------------------- error pages in the admin's look


def _error_page(request, *, status: int, title: str, text: str, fallback):
    """A 403 or 404 inside the admin, for its staff, in unfold's page (sidebar, header, dark
    mode) with a way back; anyone else gets Django's plain page (nothing of the admin's
    navigation is shown to them)."""
    user = getattr(request, "user", None)
    if not (user and user.is_active and user.is_staff):
        return fallback
    from django.contrib import admin

    context = {
        **admin.site.each_context(request),
        "title": title,
        "error_text": text,
        "error_status": status,
    }
    return TemplateResponse(request, "admin/sync/error.html", context, status=status).render()


def permission_denied(request, exception=None):
    from django.views import defaults

    return _error_page(
        request,
        status=403,
        title="You may not open this page",
        text="Your role does not include this page or this action. Ask a sync admin if you "
        "need it.",
        fallback=defaults.permission_denied(request, exception),
    )


def page_not_found(request, exception=None):
    from django.views import defaults

    return _error_page(
        request,
        status=404,
        title="Page not found",
        text="There is nothing at this address: it may have been deleted, or the link is mistyped.",
        fallback=defaults.page_not_found(request, exception),
    )


@csrf_exempt
def inbound(request, token):
    """A platform's events for one destination (sync.inbound). Outside the admin and its
    session: the platform's signature (or basic auth) is the only proof, checked by the
    platform's own verifier. A body over the limit is refused before it is read."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > MAX_BODY:
        body = b"x" * (MAX_BODY + 1)  # counted as over the limit without being read
    else:
        body = request.read(MAX_BODY + 1)
    headers = {name.lower(): value for name, value in request.headers.items()}
    answer = services.inbound_delivery_receive(
        token=token,
        method=request.method,
        headers=headers,
        body=body,
        query={key: request.GET.get(key, "") for key in request.GET},
    )
    return HttpResponse(answer.body, status=answer.status, content_type="text/plain")
