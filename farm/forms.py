"""Forms of the web UI. They check shapes only: the services decide the rules, and a
ServiceError is shown beside the field it names (`show_service_error`)."""

from __future__ import annotations

import json
from typing import Any

import django_filters
from django import forms

from farm.api.filters import AuditEventFilter, WikiFilter
from farm.errors import ServiceError
from farm.models import Family, SettingType, Tag, WikiState


def show_service_error(form: forms.Form, exc: ServiceError, aliases: dict | None = None) -> None:
    """Put the service's message beside its field, or above the form when it names none."""
    field = (aliases or {}).get(exc.field, exc.field)
    form.add_error(field if field in form.fields else None, exc.message)


class WikiCreateForm(forms.Form):
    family = forms.ChoiceField(help_text="Decides how the wiki's database is named.")
    wiki_id = forms.CharField(
        label="Wiki id",
        max_length=64,
        help_text="A lowercase letter, then 1 to 31 lowercase letters or digits. "
        "It is permanent and never reused, even after a purge.",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                # The live check's verdict is read out with the rule.
                "aria-describedby": "wiki-id-status id_wiki_id_helptext",
            }
        ),
    )
    sitename = forms.CharField(label="Site name", max_length=255)
    language = forms.CharField(
        max_length=35, initial="en", help_text="Content language code, e.g. en, de, pt-br."
    )
    tags = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        families = Family.objects.values_list("name", "database_pattern")
        self.fields["family"].choices = [
            (name, f"{name} ({pattern})") for name, pattern in families
        ]
        self.fields["tags"].choices = [
            (name, name) for name in Tag.objects.values_list("name", flat=True)
        ]
        if not self.is_bound and Family.objects.filter(name="default").exists():
            self.initial.setdefault("family", "default")


class WikiEditForm(forms.Form):
    """The registry fields a wiki's admins may change: its site name and its tags."""

    sitename = forms.CharField(label="Site name", max_length=255)
    tags = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tags"].choices = [
            (name, name) for name in Tag.objects.values_list("name", flat=True)
        ]


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=2000,
        help_text="Why the wiki is needed again; ops read this before they approve.",
    )


class DecisionForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000, label="Note", widget=forms.TextInput())


class PurgeForm(forms.Form):
    confirm = forms.CharField(
        label="Type the wiki id to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class SettingValueForm(forms.Form):
    """One setting's value at the wiki layer, typed as the catalog says."""

    value = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, setting_type: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.setting_type = setting_type
        self.fields["value"].help_text = VALUE_HELP[setting_type]

    def clean_value(self) -> Any:
        text = self.cleaned_data["value"]
        try:
            return parse_setting_value(self.setting_type, text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


VALUE_HELP = {
    SettingType.STRING: "Plain text.",
    SettingType.INTEGER: "A whole number.",
    SettingType.NUMBER: "A number.",
    SettingType.BOOLEAN: "true or false.",
    SettingType.ARRAY: 'JSON, e.g. ["png", "jpg"].',
    SettingType.OBJECT: 'JSON, e.g. {"1x": "/logo.png"}.',
}


def parse_setting_value(setting_type: str, text: str) -> Any:
    """The value a person typed, as the JSON type the setting has."""
    text = text.strip()
    if setting_type == SettingType.STRING:
        return text
    if setting_type == SettingType.BOOLEAN:
        if text.lower() not in ("true", "false"):
            raise ValueError("type true or false")
        return text.lower() == "true"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg}") from None
    expected = {
        SettingType.INTEGER: int,
        SettingType.NUMBER: (int, float),
        SettingType.ARRAY: list,
        SettingType.OBJECT: dict,
    }[setting_type]
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ValueError(f"this setting takes {VALUE_HELP[setting_type].lower()}")
    return value


def format_setting_value(value: Any) -> str:
    """A value as a person would type it back into SettingValueForm."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=1 if isinstance(value, dict | list) else None)


class WikiListFilter(WikiFilter):
    """The API's wiki filters, with labels and choices for people."""

    state = django_filters.ChoiceFilter(choices=WikiState.choices, empty_label="any state")
    family = django_filters.ModelChoiceFilter(
        queryset=Family.objects.all(), to_field_name="name", empty_label="any family"
    )
    tag = django_filters.ModelChoiceFilter(
        field_name="tags",
        queryset=Tag.objects.all(),
        to_field_name="name",
        empty_label="any tag",
        distinct=True,
    )
    q = django_filters.CharFilter(method="filter_text", label="Search")


DATE_INPUT = forms.DateInput(attrs={"type": "date"})


class AuditLogFilter(AuditEventFilter):
    """The API's audit filters; dates instead of ISO timestamps."""

    since = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__gte", widget=DATE_INPUT, label="From"
    )
    until = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__lte", widget=DATE_INPUT, label="To"
    )
    actor = django_filters.CharFilter(field_name="actor_name", label="Actor")
    wiki = django_filters.CharFilter(method="filter_wiki", label="Wiki")
    target = django_filters.CharFilter(field_name="target_id", label="Target id")

    class Meta(AuditEventFilter.Meta):
        fields = ["actor", "action", "wiki", "target", "since", "until"]
