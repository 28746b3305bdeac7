"""Test-only endpoints for the API plumbing (envelope, auth, parsing, limits, throttling)."""

from django.urls import include, path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_schema import declares_errors
from core.errors import Conflict


class LineInput(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=1000)


class EchoInput(serializers.Serializer):
    email = serializers.EmailField()
    lines = LineInput(many=True)


class ClientOutput(serializers.Serializer):
    client = serializers.CharField()


class EchoApi(APIView):
    @extend_schema(responses=ClientOutput)
    def get(self, request):
        return Response({"client": request.user.username})

    @extend_schema(request=EchoInput, responses={201: EchoInput})
    def post(self, request):
        data = EchoInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(data.validated_data, status=201)


class ConflictApi(APIView):
    @extend_schema(request=None, responses={202: None})
    @declares_errors(409)
    def post(self, request):
        raise Conflict("The order cannot be cancelled now.", details={"status": "confirmed"})


class BrokenApi(APIView):
    @extend_schema(responses={200: None})
    def get(self, request):
        raise RuntimeError("a bug")


urlpatterns = [
    path("api/v1/test/echo/", EchoApi.as_view()),
    path("api/v1/test/conflict/", ConflictApi.as_view()),
    path("api/v1/test/broken/", BrokenApi.as_view()),
    path("", include("config.urls")),
]

handler400 = "core.api.handler400"
handler403 = "core.api.handler403"
handler404 = "core.api.handler404"
handler500 = "core.api.handler500"
