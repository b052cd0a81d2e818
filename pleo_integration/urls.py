from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from exports import favicon, health, oauth_views, webhook_views, xero_views

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("webhooks/pleo/<uuid:endpoint_uuid>/", webhook_views.pleo_webhook, name="pleo-webhook"),
    path("healthz", health.healthz, name="healthz"),
    path("favicon.ico", favicon.favicon, name="favicon"),
    path("oauth/pleo/callback/", oauth_views.callback, name="pleo-oauth-callback"),
    path("oauth/xero/callback/", xero_views.callback, name="xero-oauth-callback"),
]
