"""The managers' sync dashboard, inside the admin, built of unfold's components; its charts
are unfold's bar charts (Chart.js, bundled in unfold's static files)."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views.decorators.http import require_POST

from sync import selectors, services
from sync.models import Destination, SyncRun

VIEW_PERMISSION = "sync.view_contactsyncstate"
PUSH_PERMISSION = "sync.push_contacts"


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


def _context(request, admin_site):
    data = selectors.dashboard()
    for row in data["rows"]:
        row["hour_chart_data"] = bar_chart(row["hour_chart"], "Pushes")
        row["day_chart_data"] = bar_chart(row["day_chart"], "Pushes")
    return {
        **admin_site.each_context(request),
        "title": "Sync dashboard",
        "can_push": request.user.has_perm(PUSH_PERMISSION),
        **data,
    }


def dashboard(request, admin_site):
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    return TemplateResponse(request, "admin/sync/dashboard.html", _context(request, admin_site))


def dashboard_runs(request, admin_site):
    """The running pushes alone, polled by the dashboard so their progress bars move."""
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied
    return TemplateResponse(
        request, "admin/sync/dashboard_runs.html", _context(request, admin_site)
    )


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
