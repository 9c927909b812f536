from functools import partial

from django.contrib import admin
from django.templatetags.static import static
from django.urls import path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from sync import views as sync_views

admin.site.site_header = "Contact sync"
admin.site.site_title = "Contact sync"
admin.site.index_title = "Contacts and their destinations"
admin.site.index_template = "admin/sync_index.html"

# 403 and 404 in the admin's look for its staff (sync/views.py).
handler403 = "sync.views.permission_denied"
handler404 = "sync.views.page_not_found"


def _admin(view):
    return admin.site.admin_view(partial(view, admin_site=admin.site))


urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Pages link the SVG icon; a browser still asks /favicon.ico for what is not a page (a
    # CSV download, a JSON answer).
    path(
        "favicon.ico",
        RedirectView.as_view(url=lazy(static, str)("sync/favicon.svg"), permanent=True),
        name="favicon",
    ),
    path("admin/sync/dashboard/", _admin(sync_views.dashboard), name="sync_dashboard"),
    path(
        "admin/sync/dashboard/runs/", _admin(sync_views.dashboard_runs), name="sync_dashboard_runs"
    ),
    path(
        "admin/sync/dashboard/retry/<int:destination_id>/",
        admin.site.admin_view(sync_views.retry_failed),
        name="sync_retry_failed",
    ),
    path(
        "admin/sync/dashboard/repush-drifted/<int:destination_id>/",
        admin.site.admin_view(sync_views.repush_drifted),
        name="sync_repush_drifted",
    ),
    path(
        "admin/sync/dashboard/cancel/<int:run_id>/",
        admin.site.admin_view(sync_views.cancel_run),
        name="sync_cancel_run",
    ),
    # A platform's events for one destination: outside the admin, CSRF-exempt, authenticated
    # by the platform's signature (sync.inbound).
    path("inbound/<str:token>/", sync_views.inbound, name="sync_inbound"),
    path("admin/", admin.site.urls),
]
