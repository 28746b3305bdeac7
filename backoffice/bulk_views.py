"""Bulk actions' pages (backoffice.bulk): HTTP only. Errors become messages, never a 500."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from core.errors import ConcordError

from . import bulk
from .conf import approval_threshold
from .models import BulkItemState, BulkJobState
from .paging import page_of
from .permissions import staff_required, support_required
from .views import SAGA_STATUSES

_LIST = {bulk.SAGA: "backoffice:sagas", bulk.INCIDENT: "backoffice:incidents"}


def _page(request: HttpRequest) -> str:
    page = request.POST.get("page_kind", "")
    return page if page in _LIST else bulk.SAGA


def _back(request: HttpRequest, page: str) -> HttpResponse:
    """To the list, with the filters the person had."""
    query = urlencode(bulk.filter_values(page, request.POST))
    return redirect(reverse(_LIST[page]) + (f"?{query}" if query else ""))


@support_required
@require_POST
def bulk_preview(request: HttpRequest) -> HttpResponse:
    """How many, how much money, what each will do; nothing changes."""
    page = _page(request)
    op = request.POST.get("op", "")
    reason = request.POST.get("reason", "").strip()
    if not reason:
        messages.error(request, "A reason is required.")
        return _back(request, page)
    try:
        plan = bulk.bulk_preview(page=page, op=op, data=request.POST, by=request.user, statuses=SAGA_STATUSES)
    except ConcordError as exc:
        messages.error(request, exc.message)
        return _back(request, page)
    return render(
        request,
        "backoffice/bulk_preview.html",
        {
            "plan": plan,
            "page_kind": page,
            "reason": reason,
            "filter_values": bulk.filter_values(page, request.POST),
            "action_key": uuid.uuid4().hex,
            "threshold": approval_threshold(),
            "preview_rows": bulk.PREVIEW_ROWS,
        },
    )


@support_required
@require_POST
def bulk_start(request: HttpRequest) -> HttpResponse:
    page = _page(request)
    try:
        job_id = bulk.bulk_start(
            page=page,
            op=request.POST.get("op", ""),
            data=request.POST,
            by=request.user,
            reason=request.POST.get("reason", ""),
            action_key=request.POST.get("action_key", ""),
            statuses=SAGA_STATUSES,
        )
    except ConcordError as exc:
        messages.error(request, exc.message)
        return _back(request, page)
    messages.success(request, f"Bulk job #{job_id} started: it runs in the background.")
    return redirect("backoffice:bulk-job", job_id=job_id)


@staff_required
def bulk_job(request: HttpRequest, job_id: int) -> HttpResponse:
    try:
        progress = bulk.bulk_job_progress(job_id=job_id)
    except ConcordError as exc:
        messages.error(request, exc.message)
        return redirect("backoffice:bulk-jobs")
    state = request.GET.get("state") or None
    state = state if state in BulkItemState.values else None
    _, total = bulk.bulk_items(job_id=job_id, state=state, limit=0, offset=0)
    pager = page_of(request, total)
    items, _ = bulk.bulk_items(job_id=job_id, state=state, limit=pager.size, offset=pager.offset)
    return render(
        request,
        "backoffice/bulk_job.html",
        {
            "p": progress,
            "job": progress.job,
            "running": progress.job.state == BulkJobState.RUNNING,
            "counts": [(v, label, progress.counts[v]) for v, label in BulkItemState.choices],
            "state": state or "",
            "items": items,
            "pager": pager,
        },
    )


@staff_required
def bulk_jobs(request: HttpRequest) -> HttpResponse:
    _, total = bulk.bulk_jobs_list(limit=0, offset=0)
    pager = page_of(request, total)
    jobs, _ = bulk.bulk_jobs_list(limit=pager.size, offset=pager.offset)
    return render(request, "backoffice/bulk_jobs.html", {"jobs": jobs, "pager": pager})


@support_required
@require_POST
def bulk_stop(request: HttpRequest, job_id: int) -> HttpResponse:
    try:
        bulk.bulk_stop(job_id=job_id, by=request.user)
    except ConcordError as exc:
        messages.error(request, exc.message)
    else:
        messages.info(request, f"Bulk job #{job_id} stopped; items not started stay undone.")
    return redirect("backoffice:bulk-job", job_id=job_id)
