"""The web UI: server-rendered pages over the same services as the API and the CLI.

Every page reads through the querysets that filter by the caller (another admin's wiki is a
404, not a 403) and every POST calls a service; a ServiceError is shown beside the field it
names. Pages are complete without JavaScript; farm/static/farm/*.js only adds the live id
check and live operation progress.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.paginator import Paginator
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from farm import config, policies
from farm import services as registry
from farm.errors import InvalidInput, ServiceError
from farm.forms import (
    AuditLogFilter,
    CloneForm,
    DecisionForm,
    PurgeForm,
    ReasonForm,
    RestoreForm,
    SettingValueForm,
    WikiCreateForm,
    WikiEditForm,
    WikiListFilter,
    show_service_error,
    ui_message,
)
from farm.management.commands.farm_seed_demo import DEMO_USERS
from farm.models import (
    AuditEvent,
    ConfigLayer,
    EditableBy,
    Family,
    SettingDefinition,
    Wiki,
    WikiState,
)
from farm.roles import is_ops, may_create_wikis, sees_all_wikis
from portal.auth import provider_logout_url
from provisioning import restores
from provisioning import services as lifecycle
from provisioning.models import Operation, UnarchiveRequest, UnarchiveRequestState, WikiUsage

PAGE_SIZE = 50
TIMELINE_LENGTH = 20


def _page(request: HttpRequest, queryset: QuerySet):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _visible_wiki(request: HttpRequest, wiki_id: str) -> Wiki:
    return get_object_or_404(
        Wiki.objects.for_user(request.user).select_related("family"), pk=wiki_id
    )


def _forbidden(request: HttpRequest) -> HttpResponse:
    """The 403 page, answered rather than raised: Django logs a raised PermissionDenied
    with its traceback, and a refusal is an answer, not a fault (one log line)."""
    return render(request, "403.html", status=403)


# --- signing in and out --------------------------------------------------------------------


class PortalLoginView(LoginView):
    """The provider's button when OIDC is configured, else the local demo login; with
    production settings and no FARM_DEMO=1 there is no demo login, only the provider's."""

    template_name = "farm/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if settings.OIDC_LOGIN_ENABLED:
            return HttpResponse("Sign in through the identity provider.", status=405)
        if not settings.FARM_DEMO:
            return HttpResponse("The demo login is off with production settings.", status=405)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            oidc_enabled=settings.OIDC_LOGIN_ENABLED,
            demo_enabled=settings.FARM_DEMO,
            provider_name=settings.OIDC_PROVIDER_NAME,
            login_failed="failed" in self.request.GET,
            demo_users=(
                [(name, role, password) for name, role, password in DEMO_USERS]
                if settings.FARM_DEMO
                else []
            ),
        )
        return context


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """POST only (a link could log people out from another site's page)."""
    if settings.OIDC_LOGIN_ENABLED:
        destination = provider_logout_url(request)  # reads the session: before it ends
    else:
        destination = reverse(settings.LOGOUT_REDIRECT_URL)
    auth.logout(request)
    return redirect(destination)


def oidc_only(view):
    """The provider's endpoints exist only when OIDC login is configured."""

    def wrapped(request, *args, **kwargs):
        if not settings.OIDC_LOGIN_ENABLED:
            raise Http404("OIDC login is not configured")
        return view(request, *args, **kwargs)

    return wrapped


def home(request: HttpRequest) -> HttpResponse:
    return redirect("wiki-list" if request.user.is_authenticated else "login")


# --- lists of wikis ------------------------------------------------------------------------


def _with_last_operation(queryset: QuerySet) -> QuerySet:
    latest = Operation.objects.filter(wiki_ref=OuterRef("pk")).order_by("-created_at")
    return queryset.select_related("family").annotate(
        last_operation_kind=Subquery(latest.values("kind")[:1]),
        last_operation_state=Subquery(latest.values("state")[:1]),
        last_operation_at=Subquery(latest.values("created_at")[:1]),
    )


def archive_bytes(wiki: Wiki) -> int | None:
    """The size of the wiki's current archive, from the manifest the registry keeps."""
    if wiki.state == WikiState.PURGED:
        return None  # the purge removed the archive; its manifest stays as a record
    manifest = wiki.archive_manifest or {}
    sizes = [
        (manifest.get("database") or {}).get("bytes"),
        (manifest.get("search") or {}).get("bytes"),
        (manifest.get("storage") or {}).get("bytes"),
    ]
    known = [size for size in sizes if isinstance(size, int)]
    return sum(known) if known else None


def _wiki_list(request: HttpRequest, queryset: QuerySet, *, title: str, everyone: bool):
    wiki_filter = WikiListFilter(request.GET, queryset=_with_last_operation(queryset))
    wikis = wiki_filter.qs if wiki_filter.is_valid() else queryset.none()
    page = _page(request, wikis.distinct())
    for wiki in page:
        wiki.archive_bytes = archive_bytes(wiki)
    context = {"title": title, "filter": wiki_filter, "page": page, "everyone": everyone}
    return render(request, "farm/wiki_list.html", context)


@login_required
@require_GET
def wiki_list(request: HttpRequest) -> HttpResponse:
    """My wikis: the ones the user owns."""
    mine = Wiki.objects.for_user(request.user).filter(owners=request.user)
    return _wiki_list(request, mine, title="My wikis", everyone=False)


@login_required
@require_GET
def all_wikis(request: HttpRequest) -> HttpResponse:
    if not sees_all_wikis(request.user):
        return _forbidden(request)
    return _wiki_list(
        request, Wiki.objects.for_user(request.user), title="All wikis", everyone=True
    )


def _submit(request: HttpRequest, form, act) -> HttpResponse | int:
    """Run a form's POST through a service: `act(cleaned_data)` calls it and returns the
    wiki id and a success message, then the answer is a redirect to that wiki. Otherwise
    the status to render the form with: 200 for a GET, 400 for an invalid form, the
    service's own when it refuses (its message beside the field it names)."""
    if request.method != "POST":
        return 200
    if not form.is_valid():
        return 400
    try:
        wiki_id, message = act(form.cleaned_data)
    except ServiceError as exc:
        show_service_error(form, exc)
        return exc.status
    messages.success(request, message)
    return redirect("wiki-detail", wiki_id=wiki_id)


# --- create ----------------------------------------------------------------------------------


def wiki_id_problem(wiki_id: object, family_name: object) -> InvalidInput | None:
    """What stops `wiki_id` from being created in that family right now, if anything: the
    very checks provisioning.services.wiki_create makes."""
    try:
        wiki_id = lifecycle.check_new_wiki_id(wiki_id)
        family = Family.objects.filter(name=family_name).first() if family_name else None
        if family is not None:
            lifecycle.check_new_database_name(family, wiki_id)
    except InvalidInput as exc:
        return exc
    return None


@require_GET
def check_wiki_id_json(request: HttpRequest) -> JsonResponse:
    """The live check of the create form: {"id", "available", "message", "rule"?}."""
    if not request.user.is_authenticated:
        return JsonResponse({"code": "not_authenticated", "message": "Sign in first."}, status=401)
    wiki_id = request.GET.get("id", "")
    problem = wiki_id_problem(wiki_id, request.GET.get("family"))
    if problem is None:
        return JsonResponse({"id": wiki_id, "available": True, "message": f"{wiki_id} is free"})
    body = {"id": wiki_id, "available": False, "message": ui_message(problem, "Wiki id")}
    if problem.rule:
        body["rule"] = problem.rule
    return JsonResponse(body)


@login_required
@require_http_methods(["GET", "POST"])
def wiki_create(request: HttpRequest) -> HttpResponse:
    if not may_create_wikis(request.user):
        return _forbidden(request)
    form = WikiCreateForm(request.POST or None)

    def create(data):
        lifecycle.wiki_create(
            actor=request.user,
            wiki_id=data["wiki_id"],
            family=data["family"],
            sitename=data["sitename"],
            language=data["language"],
            tags=data["tags"],
        )
        return data["wiki_id"], f"Creating {data['wiki_id']}: its steps are shown below."

    outcome = _submit(request, form, create)
    if isinstance(outcome, HttpResponse):
        return outcome
    return render(request, "farm/wiki_create.html", {"form": form}, status=outcome)


# --- one wiki --------------------------------------------------------------------------------


def _timeline(request: HttpRequest, wiki: Wiki) -> list[Operation]:
    operations = (
        Operation.objects.for_user(request.user)
        .filter(wiki_ref=wiki.id)
        .select_related("actor")
        .order_by("-created_at")
    )
    return list(operations[:TIMELINE_LENGTH])


def _wiki_page(
    request: HttpRequest,
    wiki: Wiki,
    *,
    restore_form: RestoreForm | None = None,
    clone_form: CloneForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The wiki's page; with a refused restore or clone, that form with its errors."""
    timeline = _timeline(request, wiki)
    sources = restores.restore_sources(wiki) if wiki.state != WikiState.PURGED else []
    may_manage = policies.may_manage_wiki(request.user, wiki)
    may_restore = is_ops(request.user) and wiki.state in restores.RESTORABLE_STATES
    context = {
        "wiki": wiki,
        "timeline": timeline,
        "open_operation": next((op for op in timeline if op.state in ("pending", "running")), None),
        "pending_request": wiki.unarchive_requests.filter(
            state=UnarchiveRequestState.PENDING
        ).first(),
        "may_manage": may_manage,
        "may_close": policies.may_close_wiki(request.user, wiki),
        "may_purge": is_ops(request.user),
        "archive_bytes": archive_bytes(wiki),
        "owners": wiki.owners.order_by("username").values_list("username", flat=True),
        "tags": wiki.tags.values_list("name", flat=True),
        "usage": WikiUsage.objects.filter(wiki=wiki).first(),
        "cloned_from_visible": _sees_clone_source(request, wiki),
        "sources": [_shown_source(source) for source in sources],
        "restore_form": (restore_form or RestoreForm(sources=sources)) if may_restore else None,
        "clone_form": (
            (clone_form or CloneForm(sources=sources)) if may_manage and sources else None
        ),
    }
    return render(request, "farm/wiki_detail.html", context, status=status)


def _sees_clone_source(request: HttpRequest, wiki: Wiki) -> bool:
    """Whether the wiki a clone came from is the user's to see (then it is a link)."""
    source = (wiki.cloned_from or {}).get("wiki")
    return bool(source) and Wiki.objects.for_user(request.user).filter(pk=source).exists()


def _shown_source(source: dict) -> dict:
    """A restore source with its time as a datetime, for the template's date filter."""
    created = source.get("created_at")
    return {**source, "created_at": datetime.fromisoformat(created) if created else None}


@login_required
@require_GET
def wiki_detail(request: HttpRequest, wiki_id: str) -> HttpResponse:
    return _wiki_page(request, _visible_wiki(request, wiki_id))


@login_required
@require_POST
def wiki_restore(request: HttpRequest, wiki_id: str) -> HttpResponse:
    """Restore in place from a backup or the archive: ops only, the typed id confirms."""
    wiki = _visible_wiki(request, wiki_id)
    if not is_ops(request.user):
        return _forbidden(request)
    form = RestoreForm(request.POST, sources=restores.restore_sources(wiki))
    if not form.is_valid():
        return _wiki_page(request, wiki, restore_form=form, status=400)
    try:
        restores.wiki_restore(
            actor=request.user,
            wiki_id=wiki.id,
            source_id=form.cleaned_data["source"],
            confirm=form.cleaned_data["confirm"],
        )
    except ServiceError as exc:
        show_service_error(form, exc, aliases={"from": "source", "wiki_id": None})
        return _wiki_page(request, wiki, restore_form=form, status=exc.status)
    messages.success(
        request,
        f"Restoring {wiki.id} from {form.cleaned_data['source']}: its current state is "
        "backed up first.",
    )
    return redirect("wiki-detail", wiki_id=wiki.id)


@login_required
@require_POST
def wiki_clone(request: HttpRequest, wiki_id: str) -> HttpResponse:
    """Restore a backup or the archive as a new wiki id; its page follows the copy."""
    wiki = _visible_wiki(request, wiki_id)
    if not policies.may_manage_wiki(request.user, wiki):
        return _forbidden(request)
    form = CloneForm(request.POST, sources=restores.restore_sources(wiki))
    if not form.is_valid():
        return _wiki_page(request, wiki, clone_form=form, status=400)
    data = form.cleaned_data
    try:
        operation = restores.wiki_clone(
            actor=request.user,
            wiki_id=wiki.id,
            source_id=data["source"],
            new_id=data["new_id"],
            sitename=data["sitename"],
        )
    except ServiceError as exc:
        show_service_error(form, exc, aliases={"from": "source", "wiki_id": "new_id"})
        return _wiki_page(request, wiki, clone_form=form, status=exc.status)
    messages.success(request, f"Copying {wiki.id} as {operation.wiki_ref}: its steps are below.")
    return redirect("wiki-detail", wiki_id=operation.wiki_ref)


@login_required
@require_http_methods(["GET", "POST"])
def wiki_archive(request: HttpRequest, wiki_id: str) -> HttpResponse:
    """A confirmation page that says what archiving does; POST starts it."""
    wiki = _visible_wiki(request, wiki_id)
    if not policies.may_manage_wiki(request.user, wiki):
        return _forbidden(request)
    error, status = None, 200
    if request.method == "POST":
        try:
            lifecycle.wiki_archive(actor=request.user, wiki_id=wiki.id)
        except ServiceError as exc:
            error, status = ui_message(exc), exc.status
        else:
            messages.success(request, f"Archiving {wiki.id}.")
            return redirect("wiki-detail", wiki_id=wiki.id)
    context = {
        "wiki": wiki,
        "error": error,
        "retention_days": settings.FARM_ARCHIVE_RETENTION_DAYS,
    }
    return render(request, "farm/wiki_archive.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def wiki_edit(request: HttpRequest, wiki_id: str) -> HttpResponse:
    """Change the site name and tags; MediaWiki's export follows within a publish window."""
    wiki = _visible_wiki(request, wiki_id)
    if not policies.may_manage_wiki(request.user, wiki):
        return _forbidden(request)
    initial = {"sitename": wiki.sitename, "tags": list(wiki.tags.values_list("name", flat=True))}
    form = WikiEditForm(request.POST or None, initial=initial)

    def edit(data):
        registry.wiki_update(
            actor=request.user, wiki_id=wiki.id, sitename=data["sitename"], tags=data["tags"]
        )
        return wiki.id, f"Saved {wiki.id}."

    outcome = _submit(request, form, edit)
    if isinstance(outcome, HttpResponse):
        return outcome
    return render(request, "farm/wiki_edit.html", {"wiki": wiki, "form": form}, status=outcome)


@login_required
@require_http_methods(["GET", "POST"])
def wiki_close(request: HttpRequest, wiki_id: str) -> HttpResponse:
    """Close a wiki: MediaWiki keeps serving it, read-only, with the reason given."""
    wiki = _visible_wiki(request, wiki_id)
    if not policies.may_close_wiki(request.user, wiki):
        return _forbidden(request)
    form = ReasonForm(request.POST or None)

    def close(data):
        lifecycle.wiki_close(actor=request.user, wiki_id=wiki.id, reason=data["reason"])
        return wiki.id, f"Closing {wiki.id}: it stays online, read-only."

    outcome = _submit(request, form, close)
    if isinstance(outcome, HttpResponse):
        return outcome
    return render(request, "farm/wiki_close.html", {"wiki": wiki, "form": form}, status=outcome)


@login_required
@require_POST
def wiki_reopen(request: HttpRequest, wiki_id: str) -> HttpResponse:
    wiki = _visible_wiki(request, wiki_id)
    if not policies.may_close_wiki(request.user, wiki):
        return _forbidden(request)
    try:
        lifecycle.wiki_reopen(actor=request.user, wiki_id=wiki.id)
    except ServiceError as exc:
        messages.error(request, ui_message(exc))
    else:
        messages.success(request, f"Reopening {wiki.id}: it becomes writable again.")
    return redirect("wiki-detail", wiki_id=wiki.id)


@login_required
@require_http_methods(["GET", "POST"])
def unarchive_request(request: HttpRequest, wiki_id: str) -> HttpResponse:
    wiki = _visible_wiki(request, wiki_id)
    if not policies.may_manage_wiki(request.user, wiki):
        return _forbidden(request)
    form = ReasonForm(request.POST or None)

    def request_unarchive(data):
        lifecycle.unarchive_request(actor=request.user, wiki_id=wiki.id, reason=data["reason"])
        return wiki.id, f"Unarchive of {wiki.id} requested; ops will decide."

    outcome = _submit(request, form, request_unarchive)
    if isinstance(outcome, HttpResponse):
        return outcome
    context = {"wiki": wiki, "form": form}
    return render(request, "farm/unarchive_request.html", context, status=outcome)


@login_required
@require_POST
def operation_action(request: HttpRequest, operation_id: str, action: str) -> HttpResponse:
    """Retry a failed operation, or abandon a failed create."""
    operation = get_object_or_404(Operation.objects.for_user(request.user), pk=operation_id)
    service = {"retry": lifecycle.operation_retry, "abandon": lifecycle.operation_abandon}[action]
    try:
        service(actor=request.user, operation_id=operation.pk)
    except ServiceError as exc:
        messages.error(request, ui_message(exc))
    else:
        messages.success(request, f"{action.capitalize()} of the {operation.kind} started.")
    if operation.wiki_id and Wiki.objects.filter(pk=operation.wiki_id).exists():
        return redirect("wiki-detail", wiki_id=operation.wiki_id)
    return redirect("wiki-list")


# --- configuration ---------------------------------------------------------------------------


def _may_edit_setting(user, wiki: Wiki, editable_by: str | None) -> bool:
    if wiki.state == WikiState.PURGED:
        return False
    if is_ops(user):
        return True
    return editable_by == EditableBy.WIKI_ADMIN and policies.may_manage_wiki(user, wiki)


@login_required
@require_GET
def wiki_config(request: HttpRequest, wiki_id: str) -> HttpResponse:
    """Effective values with the layer each comes from."""
    wiki = _visible_wiki(request, wiki_id)
    effective = config.wiki_effective_config(actor=request.user, wiki_id=wiki.id)
    rows = [
        {
            "name": name,
            "value": entry["value"],
            "layer": entry.get("layer"),
            "target": entry.get("target"),
            "merged_from": entry.get("merged_from", []),
            "editable": _may_edit_setting(request.user, wiki, entry.get("editable_by")),
            "editable_by": entry.get("editable_by"),
        }
        for name, entry in effective["settings"].items()
    ]
    context = {"wiki": wiki, "rows": rows, "chain": effective["chain"]}
    return render(request, "farm/wiki_config.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def wiki_config_setting(request: HttpRequest, wiki_id: str, setting: str) -> HttpResponse:
    """One setting: its value at every layer, and the wiki layer's value to edit."""
    wiki = _visible_wiki(request, wiki_id)
    definition = get_object_or_404(SettingDefinition, name=setting)
    editable = _may_edit_setting(request.user, wiki, definition.editable_by)
    entry = config.wiki_effective_config(actor=request.user, wiki_id=wiki.id)["settings"][setting]
    own = next((layer["value"] for layer in entry["layers"] if layer["layer"] == "wiki"), None)
    # The form starts from the wiki's own value, else the inherited one: a checkbox or a
    # choice always shows some value, and it should be the one in force.
    form = SettingValueForm(
        request.POST or None,
        definition=definition,
        initial={"value": entry["value"] if own is None else own},
    )
    status: int | None = 200
    if request.method == "POST":
        if not editable:
            return _forbidden(request)
        status = _save_setting(request, form, wiki, definition)
        if status is None:
            return redirect("wiki-config", wiki_id=wiki.id)
    context = {
        "wiki": wiki,
        "definition": definition,
        "entry": entry,
        "form": form,
        "editable": editable,
        "has_own_value": own is not None,
    }
    return render(request, "farm/wiki_config_setting.html", context, status=status)


def _save_setting(request, form, wiki: Wiki, definition: SettingDefinition) -> int | None:
    """Set or remove the wiki layer's value; None on success, else the status to answer."""
    block = {"layer": ConfigLayer.WIKI, "target": wiki.id, "setting": definition.name}
    if request.POST.get("action") == "unset":
        try:
            config.config_unset(actor=request.user, **block)
        except ServiceError as exc:
            messages.error(request, ui_message(exc))
            return exc.status
        messages.success(request, f"{definition.name} now inherits its value.")
        return None
    if not form.is_valid():
        return 400
    try:
        config.config_set(actor=request.user, value=form.cleaned_data["value"], **block)
    except ServiceError as exc:
        show_service_error(form, exc, aliases={definition.name: "value"})
        return exc.status
    messages.success(request, f"{definition.name} was saved.")
    return None


# --- ops: unarchive queue, purge, audit log --------------------------------------------------


@login_required
@require_GET
def unarchive_queue(request: HttpRequest) -> HttpResponse:
    if not sees_all_wikis(request.user):
        return _forbidden(request)
    return _render_queue(request)


def _render_queue(request, *, failed_request: int | None = None, error: str = "", status=200):
    requests = UnarchiveRequest.objects.for_user(request.user).select_related(
        "wiki", "requested_by", "decided_by"
    )
    context = {
        "pending": requests.filter(state=UnarchiveRequestState.PENDING).order_by("requested_at"),
        "decided": requests.exclude(state=UnarchiveRequestState.PENDING).order_by("-decided_at")[
            :TIMELINE_LENGTH
        ],
        "failed_request": failed_request,
        "error": error,
        "may_decide": is_ops(request.user),
        "two_person_rule": settings.FARM_UNARCHIVE_TWO_PERSON_RULE,
    }
    return render(request, "farm/unarchive_queue.html", context, status=status)


@login_required
@require_POST
def unarchive_decide(request: HttpRequest, request_id: int, decision: str) -> HttpResponse:
    if not is_ops(request.user):
        return _forbidden(request)
    unarchive = get_object_or_404(UnarchiveRequest.objects.for_user(request.user), pk=request_id)
    form = DecisionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    service = {"approve": lifecycle.unarchive_approve, "deny": lifecycle.unarchive_deny}[decision]
    try:
        service(actor=request.user, request_id=unarchive.pk, note=note)
    except ServiceError as exc:
        return _render_queue(
            request, failed_request=unarchive.pk, error=ui_message(exc), status=exc.status
        )
    if decision == "approve":
        messages.success(request, f"Approved: unarchiving {unarchive.wiki_id}.")
        return redirect("wiki-detail", wiki_id=unarchive.wiki_id)
    messages.success(request, f"Denied the unarchive of {unarchive.wiki_id}.")
    return redirect("unarchive-queue")


@login_required
@require_http_methods(["GET", "POST"])
def wiki_purge(request: HttpRequest, wiki_id: str) -> HttpResponse:
    """Says what will be removed; the wiki id typed again starts the purge."""
    wiki = _visible_wiki(request, wiki_id)
    if not is_ops(request.user):
        return _forbidden(request)
    if wiki.state in (WikiState.PURGING, WikiState.PURGED):
        return redirect("wiki-detail", wiki_id=wiki.id)
    form = PurgeForm(request.POST or None)

    def purge(data):
        lifecycle.wiki_purge(actor=request.user, wiki_id=wiki.id, confirm=data["confirm"])
        return wiki.id, f"Purging {wiki.id}; the receipt appears when it is done."

    outcome = _submit(request, form, purge)
    if isinstance(outcome, HttpResponse):
        return outcome
    context = {"wiki": wiki, "form": form, "archive_bytes": archive_bytes(wiki)}
    return render(request, "farm/wiki_purge.html", context, status=outcome)


@login_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    if not sees_all_wikis(request.user):
        return _forbidden(request)
    audit_filter = AuditLogFilter(request.GET, queryset=AuditEvent.objects.all())
    events = audit_filter.qs if audit_filter.is_valid() else AuditEvent.objects.none()
    context = {"filter": audit_filter, "page": _page(request, events)}
    return render(request, "farm/audit_log.html", context)
