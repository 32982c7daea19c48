"""List filters (django-filter) shared by the API and the web UI, so that neither interface
depends on the other. The API answers an invalid filter value with 400, not an empty list."""

from __future__ import annotations

import django_filters
from django.db.models import Q

from farm.models import AuditEvent, SizeClass, Wiki, WikiState
from provisioning.models import (
    Operation,
    OperationKind,
    OperationState,
    Run,
    RunItem,
    RunItemState,
    RunKind,
    RunState,
    UnarchiveRequest,
    UnarchiveRequestState,
)


class WikiFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=WikiState.choices)
    # The UI replaces some filters with choice widgets, so these name the base class.
    family: django_filters.Filter = django_filters.CharFilter(field_name="family__name")
    # Tag and owner as "id in (the link table's rows)": a join would need DISTINCT, and
    # counting a DISTINCT over 100,000 wikis is what made the list page slow.
    tag: django_filters.Filter = django_filters.CharFilter(method="filter_tag")
    owner = django_filters.CharFilter(method="filter_owner")
    # Repeat it for several: ?size_class=small&size_class=medium.
    size_class: django_filters.Filter = django_filters.MultipleChoiceFilter(
        choices=SizeClass.choices
    )
    q = django_filters.CharFilter(method="filter_text", label="Text in the id or sitename")

    class Meta:
        model = Wiki
        fields = ["state", "family", "tag", "owner", "size_class", "q"]

    def filter_text(self, queryset, name, value):
        return queryset.filter(Q(id__icontains=value) | Q(sitename__icontains=value))

    def filter_tag(self, queryset, name, value):
        tagged = Wiki.tags.through.objects.filter(tag__name=value).values("wiki_id")
        return queryset.filter(pk__in=tagged)

    def filter_owner(self, queryset, name, value):
        owned = Wiki.owners.through.objects.filter(user__username=value).values("wiki_id")
        return queryset.filter(pk__in=owned)


class OperationFilter(django_filters.FilterSet):
    wiki = django_filters.CharFilter(field_name="wiki_ref")
    kind = django_filters.ChoiceFilter(choices=OperationKind.choices)
    state = django_filters.ChoiceFilter(choices=OperationState.choices)

    class Meta:
        model = Operation
        fields = ["wiki", "kind", "state"]


class RunFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=RunKind.choices)
    state = django_filters.ChoiceFilter(choices=RunState.choices)

    class Meta:
        model = Run
        fields = ["kind", "state"]


class RunItemFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=RunItemState.choices)
    size_class = django_filters.ChoiceFilter(choices=SizeClass.choices)

    class Meta:
        model = RunItem
        fields = ["state", "size_class"]


class UnarchiveRequestFilter(django_filters.FilterSet):
    wiki = django_filters.CharFilter(field_name="wiki_id")
    state = django_filters.ChoiceFilter(choices=UnarchiveRequestState.choices)

    class Meta:
        model = UnarchiveRequest
        fields = ["wiki", "state"]


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name")
    action = django_filters.CharFilter()
    wiki = django_filters.CharFilter(
        method="filter_wiki", label="The wiki's own events and those of its operations"
    )
    since: django_filters.Filter = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte"
    )
    until: django_filters.Filter = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt"
    )

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "wiki", "since", "until"]

    def filter_wiki(self, queryset, name, value):
        operations = Operation.objects.filter(wiki_ref=value).values("pk")
        return queryset.filter(
            Q(target_type="wiki", target_id=value) | Q(operation_id__in=operations)
        )
