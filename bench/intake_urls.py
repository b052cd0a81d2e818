"""URLs for benchmark 2: the product's own, plus a bare view that does one insert (the baseline).

Used only by ``bench/webhook_intake.py`` (``ROOT_URLCONF=intake_urls``, with ``bench/`` on the
path); never by the product.
"""

from django.db import connection
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from pleo_integration.urls import urlpatterns as product_urlpatterns


@csrf_exempt
def bare(request):
    """One insert of the raw body, then 204: what any webhook receiver must at least do."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_bare (body) VALUES (%s)", [request.body.decode()])
    return HttpResponse(status=204)


urlpatterns = [path("bench/bare/", bare), *product_urlpatterns]
