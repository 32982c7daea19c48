"""The web UI of farm-wide runs (provisioning/runs.py): the list, starting one through a
preview, a run's live progress, its failures and its report.

Runs are farm-wide: ops and auditors see them, anyone else gets a 404 on every page (as
`runs.visible_run` answers); only ops start and control them. Starting is two POSTs and no
JavaScript: the form shows the preview (`runs.preview`: wikis per size class, how many run
at once), whose Confirm button creates the run (`runs.run_create`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from farm.errors import NotFound, ServiceError
from farm.forms import RunForm, show_service_error, ui_message
from farm.roles import is_ops, sees_all_wikis
from provisioning import runs
from provisioning.models import ACTIVE_RUN_STATES, Run, RunItemState, RunState

PAGE_SIZE = 50
FAILED_ITEMS_SHOWN = 100
# The bar's segments, in the order a run moves its items through them.
BAR_STATES = [
    RunItemState.SUCCEEDED,
    RunItemState.FAILED,
    RunItemState.SKIPPED,
    RunItemState.CANCELLED,
    RunItemState.RUNNING,
    RunItemState.QUEUED,
]
CONTROLS = {
    "halt": (runs.run_halt, "Halted {run}: running items finish, no new ones start."),
    "resume": (runs.run_resume, "Resumed {run}."),
    "cancel": (runs.run_cancel, "Cancelled {run}: queued items will not run."),
    "retry-failed": (runs.run_retry_failed, "Queued the failed items of {run} again."),
}


def _require_viewer(request: HttpRequest) -> None:
    """Runs do not exist for anyone but ops and auditors (a 404, as in the API)."""
    if not sees_all_wikis(request.user):
        raise Http404("no such page")


def _visible_run(request: HttpRequest, run_id: str) -> Run:
    try:
        return runs.visible_run(request.user, run_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def selection_words(selection: dict[str, Any]) -> str:
    """A run's selection as a person says it."""
    if not selection:
        return "—"
    ((key, value),) = selection.items()
    if key == "all":
        return "all wikis"
    if key == "family":
        return f"family {value}"
    if key == "tag":
        return f"tag {value}"
    if key == "size_classes":
        return "size classes " + ", ".join(value)
    ids = list(value)
    shown = ", ".join(ids[:5])
    return f"wikis {shown}" + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def halt_words(after_failures: int | None, failure_share: float | None) -> str:
    parts = []
    if after_failures is not None:
        parts.append(f"after {after_failures} failure{'' if after_failures == 1 else 's'}")
    if failure_share is not None:
        parts.append(f"when a share of {failure_share:g} failed")
    return " or ".join(parts) or "never (no threshold)"


# --- the list and starting a run -----------------------------------------------------------


@login_required
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    _require_viewer(request)
    finished = ~Q(items__state__in=[RunItemState.QUEUED, RunItemState.RUNNING])
    listed = Run.objects.select_related("created_by").annotate(
        total=Count("items"),
        done=Count("items", filter=finished),
        failed=Count("items", filter=Q(items__state=RunItemState.FAILED)),
    )
    page = Paginator(listed.order_by("-created_at"), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(run, selection_words(run.selection)) for run in page]
    context = {"page": page, "rows": rows, "may_start": is_ops(request.user)}
    return render(request, "farm/run_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def run_start(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST: `action=preview` (the default) shows what the run would cover,
    `confirm` creates it, `edit` goes back to the form with what was typed."""
    _require_viewer(request)
    if not is_ops(request.user):
        return render(request, "403.html", status=403)
    form = RunForm(request.POST or None)
    if request.method != "POST":
        return _render_form(request, form)
    if not form.is_valid():
        return _render_form(request, form, status=400)
    action = request.POST.get("action", "preview")
    if action == "edit":
        return _render_form(request, form)
    arguments = form.service_arguments()
    try:
        if action == "confirm":
            run = runs.run_create(actor=request.user, **arguments)
            messages.success(request, f"Started the {run.kind} run {run.pk}.")
            return redirect("run-detail", run_id=run.pk)
        preview = _preview(request, arguments)
    except ServiceError as exc:
        show_service_error(
            form, exc, aliases=form.service_aliases(), subjects={"wiki_id": "Each wiki id"}
        )
        return _render_form(request, form, status=exc.status)
    context = {
        "form": form,
        "preview": preview,
        "rows": _rows(preview),
        "selection_words": selection_words(preview["selection"]),
        "halt_words": halt_words(arguments["halt_after_failures"], arguments["halt_failure_share"]),
    }
    return render(request, "farm/run_preview.html", context)


def _preview(request: HttpRequest, arguments: dict[str, Any]) -> dict[str, Any]:
    """runs.preview, plus the checks run_create makes of what the preview does not cover
    (the halt threshold, a migration's params), so the preview never promises a run that
    Confirm would refuse."""
    preview = runs.preview(
        actor=request.user,
        kind=arguments["kind"],
        selection=arguments["selection"],
        parallelism=arguments["parallelism"],
    )
    runs.check_halt(arguments["halt_after_failures"], arguments["halt_failure_share"])
    preview["params"] = runs.check_params(preview["kind"], arguments.get("params"))
    return preview


def _rows(preview: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "size_class": size_class,
            "wikis": preview["per_class"][size_class],
            "parallelism": preview["parallelism"][size_class],
            "at_once": preview["estimated_parallelism"][size_class],
        }
        for size_class in runs.SIZE_ORDER
    ]


def _render_form(request: HttpRequest, form: RunForm, status: int = 200) -> HttpResponse:
    return render(request, "farm/run_start.html", {"form": form}, status=status)


# --- one run -------------------------------------------------------------------------------


def run_progress(run: Run) -> dict[str, Any]:
    """runs.progress and the run's state: what the page shows and its script polls."""
    progress = runs.progress(run)
    return {
        "id": run.pk,
        "kind": run.kind,
        "state": run.state,
        "halted_reason": run.halted_reason,
        # Still moving: dispatching, or items of a halted or cancelled run finishing.
        "active": run.state in ACTIVE_RUN_STATES or progress["totals"][RunItemState.RUNNING] > 0,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        **progress,
    }


def _class_rows(run: Run, progress: dict[str, Any]) -> list[dict[str, Any]]:
    """Per size class: the counts by state and the bar's segments as percentages."""
    rows = []
    for size_class, counts in progress["per_class"].items():
        total = sum(counts.values())
        rows.append(
            {
                "size_class": size_class,
                "counts": [(state, counts[state]) for state in RunItemState.values],
                "total": total,
                "done": total - counts[RunItemState.QUEUED] - counts[RunItemState.RUNNING],
                "parallelism": run.parallelism.get(size_class),
                "bar": [
                    (state, counts[state], _percent(counts[state], total)) for state in BAR_STATES
                ],
            }
        )
    return rows


def _percent(part: int, whole: int) -> str:
    """A CSS width; a dot as the decimal point whatever the locale."""
    return f"{100 * part / whole:.2f}" if whole else "0"


def _controls(run: Run, progress: dict[str, Any]) -> list[tuple[str, str]]:
    """The buttons the run's state allows: (action, label)."""
    shown = []
    if run.state in ACTIVE_RUN_STATES:
        shown.append(("halt", "Halt"))
    if run.state == RunState.HALTED:
        shown.append(("resume", "Resume"))
    if run.state != RunState.CANCELLED and progress["totals"][RunItemState.FAILED]:
        shown.append(("retry-failed", "Retry failed"))
    if run.state in (*ACTIVE_RUN_STATES, RunState.HALTED):
        shown.append(("cancel", "Cancel"))
    return shown


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    run = _visible_run(request, run_id)
    progress = run_progress(run)
    failed = runs.failed_items(run).select_related("operation")
    context = {
        "run": run,
        "progress": progress,
        "class_rows": _class_rows(run, progress),
        "failed_items": failed[:FAILED_ITEMS_SHOWN],
        "failed_count": progress["totals"][RunItemState.FAILED],
        "controls": _controls(run, progress) if is_ops(request.user) else [],
        "states": RunItemState.values,
        "selection_words": selection_words(run.selection),
        "halt_words": halt_words(run.halt_after_failures, run.halt_failure_share),
    }
    return render(request, "farm/run_detail.html", context)


@require_GET
def run_progress_json(request: HttpRequest, run_id: str) -> JsonResponse:
    """What the run page's script polls: the page's numbers, as JSON."""
    if not request.user.is_authenticated:
        return JsonResponse({"code": "not_authenticated", "message": "Sign in first."}, status=401)
    try:
        run = runs.visible_run(request.user, run_id)
    except NotFound as exc:
        return JsonResponse(exc.as_dict(), status=exc.status)
    return JsonResponse(run_progress(run))


@login_required
@require_POST
def run_control(request: HttpRequest, run_id: str, action: str) -> HttpResponse:
    """Halt, resume, cancel, or retry the failed items; ops only."""
    run = _visible_run(request, run_id)
    if not is_ops(request.user):
        return render(request, "403.html", status=403)
    service, done = CONTROLS[action]
    try:
        service(actor=request.user, run_id=run.pk)
    except ServiceError as exc:
        messages.error(request, ui_message(exc))
    else:
        messages.success(request, done.format(run=run.pk))
    return redirect("run-detail", run_id=run.pk)


@login_required
@require_GET
def run_report(request: HttpRequest, run_id: str, extension: str) -> HttpResponse:
    """The completion report as a download: JSON (counts, bytes, elapsed, per-wiki log) or
    CSV (the per-wiki log)."""
    run = _visible_run(request, run_id)
    if extension == "csv":
        response = HttpResponse(runs.report_csv(run), content_type="text/csv; charset=utf-8")
    else:
        response = JsonResponse(runs.report(run), json_dumps_params={"indent": 1})
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.{extension}"'
    return response
