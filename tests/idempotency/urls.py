"""Test-only endpoints that exercise @idempotent end to end.

There is no domain app to lean on here, so the "effect" is a real table of
Django's own: creating or renaming an auth Group.
"""

import time

from django.contrib.auth.models import Group
from django.shortcuts import get_object_or_404
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.views import APIView

from core.errors import ConcordError
from idempotency.api import idempotent


class GroupInput(serializers.Serializer):
    name = serializers.CharField(max_length=150)
    # Test knobs: hold the transaction open, fail after the effect, answer a given status.
    hold_seconds = serializers.FloatField(required=False, min_value=0, max_value=5, default=0)
    fail_after_effect = serializers.BooleanField(required=False, default=False)
    answer_status = serializers.IntegerField(required=False, default=201)
    error_after_effect = serializers.IntegerField(required=False, default=0)


class GroupOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    nonce = serializers.IntegerField(help_text="Differs on every execution: equal bodies prove a replay.")


class CountOutput(serializers.Serializer):
    count = serializers.IntegerField()


class GroupCreateApi(APIView):
    @extend_schema(request=GroupInput, responses={201: GroupOutput})
    @idempotent
    def post(self, request):
        data = GroupInput(data=request.data)
        data.is_valid(raise_exception=True)
        group = Group.objects.create(name=data.validated_data["name"])
        if data.validated_data["hold_seconds"]:
            time.sleep(data.validated_data["hold_seconds"])
        if data.validated_data["fail_after_effect"]:
            raise RuntimeError("boom after the effect")
        if data.validated_data["error_after_effect"]:
            raise ConcordError(
                "refused after the effect",
                code="refused",
                http_status=data.validated_data["error_after_effect"],
            )
        body = {"id": group.pk, "name": group.name, "nonce": time.perf_counter_ns()}
        return Response(
            body,
            status=data.validated_data["answer_status"],
            headers={"Location": f"/api/v1/test/groups/{group.pk}/"},
        )


class GroupRenameApi(APIView):
    @idempotent
    @extend_schema(request=GroupInput, responses=GroupOutput)
    def post(self, request, pk):
        group = get_object_or_404(Group, pk=pk)
        group.name = request.data.get("name", group.name)
        group.save()
        return Response({"id": group.pk, "name": group.name, "nonce": time.perf_counter_ns()})


class GroupCountApi(APIView):
    @extend_schema(responses=CountOutput)
    def get(self, request):
        return Response({"count": Group.objects.count()}, status=status.HTTP_200_OK)


class GroupViewSet(viewsets.GenericViewSet):
    """An idempotent ViewSet action, as a cancel endpoint would be written."""

    queryset = Group.objects.all()
    serializer_class = GroupOutput

    @extend_schema(request=GroupInput, responses={202: GroupOutput})
    @action(detail=True, methods=["post"])
    @idempotent
    def rename(self, request, pk=None):
        group = self.get_object()
        group.name = request.data.get("name", group.name)
        group.save()
        return Response({"id": group.pk, "name": group.name, "nonce": time.perf_counter_ns()}, status=202)


router = SimpleRouter()
router.register("api/v1/test/vs/groups", GroupViewSet, basename="test-vs-groups")

urlpatterns = [
    *router.urls,
    path("api/v1/test/groups/", GroupCreateApi.as_view()),
    path("api/v1/test/groups/<int:pk>/rename/", GroupRenameApi.as_view()),
    path("api/v1/test/groups/count/", GroupCountApi.as_view()),
    path("", include("config.urls")),
]

handler400 = "core.api.handler400"
handler403 = "core.api.handler403"
handler404 = "core.api.handler404"
handler500 = "core.api.handler500"
