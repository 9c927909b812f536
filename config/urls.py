from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "Contact sync"
admin.site.site_title = "Contact sync"
admin.site.index_title = "Contacts and their destinations"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
]
