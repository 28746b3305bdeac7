"""Bench-only URLconf: the real API plus two floor endpoints (one INSERT each).

- bench/floor/: what any authenticated JSON POST costs on this stack (gunicorn,
  Django, the API's token auth, its Redis-backed throttle, JSON parsing, one
  committed INSERT), so orders/s ÷ floor/s says how much placing an order costs
  on top of the unavoidable.
- bench/bare/: the same DRF view with no authentication, no permission and no
  throttle: the JSON POST and its INSERT alone.
- bench/guarantee/: the guarantee floor (bench/guarantee_floor.py): the same auth
  and throttle, and the least an accepted order must write to keep DESIGN §6's
  guarantee, by hand, in one transaction of two statements, then the pokes.

The table is created by the bench script, not by a migration.
"""

import json

from django.db import connection
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.guarantee_floor import GuaranteeFloorApi

FLOOR_TABLE = "bench_floor_insert"


class FloorApi(APIView):
    def post(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_floor_insert (client_id, body) VALUES (%s, %s::jsonb) RETURNING id",
                [request.user.pk, json.dumps(request.data)],
            )
            (row_id,) = cursor.fetchone()
        return Response({"id": row_id}, status=201)


class BareFloorApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def post(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_floor_insert (client_id, body) VALUES (%s, %s::jsonb) RETURNING id",
                [0, json.dumps(request.data)],
            )
            (row_id,) = cursor.fetchone()
        return Response({"id": row_id}, status=201)


urlpatterns = [
    path("bench/floor/", FloorApi.as_view()),
    path("bench/bare/", BareFloorApi.as_view()),
    path("bench/guarantee/", GuaranteeFloorApi.as_view()),
    path("", include("config.urls")),
]
