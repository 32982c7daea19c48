"""Forms of the web UI. They check shapes only: the services decide the rules, and a
ServiceError is shown beside the field it names (`show_service_error`)."""

from __future__ import annotations

import json
import re
from typing import Any

import django_filters
import jsonschema
from django import forms
from django.conf import settings

from farm.errors import ServiceError
from farm.filters import AuditEventFilter, WikiFilter
from farm.models import Family, SettingDefinition, SettingType, SizeClass, Tag, WikiState
from farm.validators import (
    DATABASE_NAME_RE,
    DATABASE_PATTERN_RE,
    ECHO_LIMIT,
    FAMILY_NAME_RE,
    LANGUAGE_RE,
    RESERVED_NAME_RE,
    TAG_NAME_RE,
    WIKI_ID_RULE,
    shorten,
)

# --- errors in words -----------------------------------------------------------------------
# The services name the rule an input broke (`rule`: a regex, a JSON Schema keyword with its
# value, `max_length:255`, ...) for scripts. People read it in words, said here once.

PATTERN_WORDS = {
    WIKI_ID_RULE: "a lowercase letter, then 1 to 31 lowercase letters or digits",
    RESERVED_NAME_RE.pattern: "a lowercase letter, then up to 31 lowercase letters or digits",
    FAMILY_NAME_RE.pattern: "a lowercase letter, then 1 to 31 lowercase letters, digits or hyphens",
    TAG_NAME_RE.pattern: "2 to 64 lowercase letters, digits or hyphens, starting with a "
    "letter and not ending with a hyphen",
    DATABASE_PATTERN_RE.pattern: "{id} once, otherwise only lowercase letters, digits and "
    "underscores",
    DATABASE_NAME_RE.pattern: "a lowercase letter, then up to 63 lowercase letters, digits or "
    "underscores",
    LANGUAGE_RE.pattern: "a language code such as en, de or pt-br",
    # The patterns of the seeded settings catalog (farm/config.py).
    r"^https?://[^/\s\"'<>]+$": "http:// or https:// and a host name, without a path",
    r"^/[^\s\"'<>]*\$1[^\s\"'<>]*$": "a path that starts with / and contains $1",
    r"^https?://[^\s\"'<>]+$": "a web address starting with http:// or https://",
    r"^[^@\s\"'<>]+@[^@\s\"'<>]+$": "an e-mail address",
    r"^[A-Za-z][A-Za-z0-9_]{0,63}$": "a letter, then up to 63 letters, digits or underscores",
    r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$": "a time zone name such as Europe/Berlin",
    r"^[a-z0-9]{1,10}$": "1 to 10 lowercase letters or digits",
    r"^[a-z][a-z0-9-]{0,63}$": "a lowercase letter, then up to 63 lowercase letters, digits "
    "or hyphens",
    r"^[a-z][a-z0-9_-]{0,63}$": "a lowercase letter, then up to 63 lowercase letters, "
    "digits, hyphens or underscores",
    r"^[A-Za-z*][A-Za-z0-9_-]{0,63}$": "a group name: a letter or *, then up to 63 letters, "
    "digits, hyphens or underscores",
    r"^-?[0-9]{1,6}$": "a namespace number",
    r"^[1-9][0-9]{2,5}$": "a namespace number of 100 or more",
}

JSON_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a map of names to values",
    "null": "empty",
}

RULE_WORDS = {
    "required": "must not be empty",
    "not_null": "must have a value (remove it to inherit instead)",
    "length<=64": "must give at most 64 characters for a 32-character wiki id",
    "ops_only": "is changed by ops only",
}


def _count(number: Any, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def keyword_in_words(keyword: str, value: Any) -> str | None:
    """A JSON Schema keyword with its value (or a service rule of that shape) as "must ..."
    words; None for a keyword this does not know."""
    if keyword == "pattern":
        return f"must be {PATTERN_WORDS.get(value, 'in the form this setting takes')}"
    if keyword == "type":
        kinds = value if isinstance(value, list) else str(value).split(">=")[:1]
        return "must be " + " or ".join(JSON_TYPE_WORDS.get(kind, kind) for kind in kinds)
    if keyword == "enum":
        choices = value if isinstance(value, list) else str(value).split(",")
        return "must be one of: " + shorten(", ".join(map(str, choices)), 200)
    if keyword == "const":
        return f"must be {shorten(json.dumps(value))}"
    if keyword == "minLength":
        return "must not be empty" if value == 1 else f"must have at least {value} characters"
    words = {
        "maxLength": lambda n: f"must have at most {_count(n, 'character')}",
        "max_length": lambda n: f"must have at most {_count(n, 'printable character')}",
        "minimum": lambda n: f"must be at least {n}",
        "maximum": lambda n: f"must be at most {n}",
        "exclusiveMinimum": lambda n: f"must be more than {n}",
        "exclusiveMaximum": lambda n: f"must be less than {n}",
        "minItems": lambda n: f"must have at least {_count(n, 'item')}",
        "maxItems": lambda n: f"must have at most {_count(n, 'item')}",
        "uniqueItems": lambda _: "must not list an item twice",
        "minProperties": lambda n: f"must have at least {_count(n, 'entry')}",
        "maxProperties": lambda n: f"must have at most {_count(n, 'entry')}",
        "required": lambda names: "must have " + ", ".join(map(str, names)),
        "additionalProperties": lambda _: "has a name that is not allowed here",
        "max_bytes": lambda n: f"must be at most {int(n) // 1024} KiB as JSON",
    }.get(keyword)
    return words(value) if words else None


def rule_in_words(rule: str | None) -> str | None:
    """A service's `rule` in words; None for rules whose message already says it in words
    (`unique`, `not_reserved`, `equals_wiki_id`, ...)."""
    if not rule:
        return None
    if rule in RULE_WORDS:
        return RULE_WORDS[rule]
    if rule in PATTERN_WORDS:
        return f"must be {PATTERN_WORDS[rule]}"
    keyword, _, value = rule.partition(":")
    if not value or not re.fullmatch(r"[A-Za-z_]+", keyword):
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return keyword_in_words(keyword, parsed)


def ui_message(exc: ServiceError, subject: str | None = None) -> str:
    """A service's refusal as a person reads it: the rule in words, what they typed cut
    short. `subject` is what broke the rule (a form field's label)."""
    words = rule_in_words(exc.rule)
    if words is None:
        return shorten_echoes(exc.message)
    if subject is None:
        named = (exc.field or "the value").replace("_", " ")
        subject = named[:1].upper() + named[1:]
    return f"{subject} {words}."


def shorten_echoes(message: str) -> str:
    """A message with every quoted echo of the input cut to a readable length."""
    return re.sub(rf"'([^']{{{ECHO_LIMIT}}})[^']+'", r"'\1…'", message)


def show_service_error(
    form: forms.Form,
    exc: ServiceError,
    aliases: dict | None = None,
    subjects: dict | None = None,
) -> None:
    """Put the service's refusal, in words, beside the field it names, or above the form
    when it names none. `subjects` names what broke a rule when the field's label does
    not (one id of a list of ids)."""
    field = (aliases or {}).get(exc.field, exc.field)
    if field in form.fields:
        subject = (subjects or {}).get(exc.field) or str(form[field].label)
        form.add_error(field, ui_message(exc, subject))
    else:
        form.add_error(None, ui_message(exc))


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


class RestoreForm(forms.Form):
    """Restore a wiki in place from one of its backups or its archive (ops only)."""

    prefix = "restore"
    # A select, but the service decides whether the id is one of the wiki's sources.
    source = forms.CharField(label="Restore from", widget=forms.Select)
    confirm = forms.CharField(
        label="Type the wiki id to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, sources: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].widget.choices = source_choices(sources)


class CloneForm(forms.Form):
    """Restore a backup or the archive of a wiki as a new wiki id."""

    prefix = "clone"
    source = forms.CharField(label="Copy from", widget=forms.Select)
    new_id = forms.CharField(
        label="New wiki id",
        max_length=64,
        help_text="A lowercase letter, then 1 to 31 lowercase letters or digits.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    sitename = forms.CharField(
        label="Site name",
        required=False,
        max_length=255,
        help_text="Empty: the source's site name.",
    )

    def __init__(self, *args, sources: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].widget.choices = source_choices(sources)


def source_choices(sources: list[dict]) -> list[tuple[str, str]]:
    """restores.restore_sources() as the options of a select, newest first."""
    choices = []
    for source in sources:
        if source["kind"] == "archive":
            label = f"archive {source['id']}"
        else:
            label = f"{source['backup_kind']} backup {source['id']}"
        choices.append((source["id"], label))
    return choices


# --- farm-wide runs ----------------------------------------------------------------------

SIZE_CLASSES = [size_class.value for size_class in SizeClass]  # smallest first, as runs go
SELECTION_CHOICES = [
    ("all", "All wikis"),
    ("family", "One family"),
    ("tag", "One tag"),
    ("size_classes", "Size classes"),
    ("wiki_ids", "These wiki ids"),
]


class RunForm(forms.Form):
    """What runs.preview and runs.run_create take, as fields a person fills in. Only
    shapes are checked here; the service's refusal is shown beside the field it names
    (`service_aliases`)."""

    kind = forms.ChoiceField(
        choices=[
            ("backup", "Backup: dump every selected wiki, nothing is dropped"),
            ("migrate", "Migration: an SQL file or a maintenance command on every wiki"),
            ("inventory", "Inventory: inspect usage and set size classes (read-only)"),
        ],
        widget=forms.RadioSelect,
        initial="backup",
    )
    selection = forms.ChoiceField(
        label="Wikis", choices=SELECTION_CHOICES, widget=forms.RadioSelect, initial="all"
    )
    family = forms.CharField(required=False, widget=forms.Select)
    tag = forms.CharField(required=False, widget=forms.Select)
    size_classes = forms.MultipleChoiceField(
        label="Size classes",
        required=False,
        choices=[(size_class, size_class) for size_class in SIZE_CLASSES],
        widget=forms.CheckboxSelectMultiple,
    )
    wiki_ids = forms.CharField(
        label="Wiki ids",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="Separated by spaces, commas or new lines.",
    )
    halt_after_failures = forms.IntegerField(
        label="Halt after this many failures",
        required=False,
        help_text="Empty: no limit by count.",
    )
    halt_failure_share = forms.FloatField(
        label="Halt when this share of wikis failed",
        required=False,
        widget=forms.NumberInput(attrs={"step": "any"}),
        help_text="Above 0 and at most 1, e.g. 0.05 for 5 %. Empty: no limit by share.",
    )
    migration = forms.CharField(
        label="Migration name",
        required=False,
        help_text="Recorded on every wiki it is applied to: a rerun skips those.",
    )
    sql_file = forms.CharField(
        label="SQL file",
        required=False,
        help_text="Its path on the workers; /*_*/ and /*$wgDBTableOptions*/ are substituted "
        "as the schema load does.",
    )
    command = forms.CharField(
        label="Or a maintenance command",
        required=False,
        help_text="Run without a shell, with {wiki} and {dbname}, e.g. "
        "php maintenance/update.php --quick --wiki={wiki}",
    )
    backup_first = forms.BooleanField(label="Back up each wiki first", required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        families = Family.objects.values_list("name", flat=True)
        self.fields["family"].widget.choices = [("", "—"), *((n, n) for n in families)]
        tags = Tag.objects.values_list("name", flat=True)
        self.fields["tag"].widget.choices = [("", "—"), *((n, n) for n in tags)]
        for size_class in SIZE_CLASSES:
            self.fields[f"parallelism_{size_class}"] = forms.IntegerField(
                label=size_class,
                initial=settings.FARM_RUN_PARALLELISM.get(size_class, 1),
                widget=forms.NumberInput(attrs={"min": 1, "class": "narrow"}),
            )

    def parallelism_fields(self) -> list[forms.BoundField]:
        return [self[f"parallelism_{size_class}"] for size_class in SIZE_CLASSES]

    def selection_value(self) -> dict:
        data = self.cleaned_data
        key = data["selection"]
        if key == "all":
            return {"all": True}
        if key == "size_classes":
            return {"size_classes": data["size_classes"]}
        if key == "wiki_ids":
            return {"wiki_ids": [i for i in re.split(r"[\s,]+", data["wiki_ids"]) if i]}
        return {key: data[key]}

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments of runs.run_create."""
        data = self.cleaned_data
        arguments: dict[str, Any] = {
            "kind": data["kind"],
            "selection": self.selection_value(),
            "parallelism": {c: data[f"parallelism_{c}"] for c in SIZE_CLASSES},
            "halt_after_failures": data["halt_after_failures"],
            "halt_failure_share": data["halt_failure_share"],
        }
        if data["kind"] == "migrate":
            params = {"migration": data["migration"], "backup_first": data["backup_first"]}
            for name in ("sql_file", "command"):
                if data[name]:
                    params[name] = data[name]
            arguments["params"] = params
        return arguments

    def service_aliases(self) -> dict[str, str]:
        """The service's field names (`selection.family`, `parallelism.small`, ...) as
        this form's."""
        chosen = self.cleaned_data.get("selection") if hasattr(self, "cleaned_data") else None
        aliases = {
            "selection": chosen if chosen in ("size_classes", "wiki_ids") else "selection",
            "selection.all": "selection",
            "selection.family": "family",
            "selection.tag": "tag",
            "selection.size_classes": "size_classes",
            "selection.wiki_ids": "wiki_ids",
            "wiki_id": "wiki_ids",
            "params.migration": "migration",
        }
        aliases.update({f"parallelism.{c}": f"parallelism_{c}" for c in SIZE_CLASSES})
        return aliases


class JSONValueField(forms.JSONField):
    """JSON typed in a textarea, shown indented: for the settings that are lists or maps."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict | list):
            return json.dumps(value, indent=1, ensure_ascii=False)
        return super().prepare_value(value)


JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    SettingType.INTEGER: int,
    SettingType.NUMBER: (int, float),
    SettingType.ARRAY: list,
    SettingType.OBJECT: dict,
}


def setting_value_field(definition: SettingDefinition) -> forms.Field:
    """The input a setting's type calls for: a checkbox for a boolean, a number input, a
    choice among the schema's `enum`, plain text for a string (what is typed is the value,
    quotes included), and JSON only for lists and maps."""
    schema = definition.schema or {}
    label = definition.name
    if definition.type == SettingType.BOOLEAN:
        return forms.BooleanField(required=False, label=label, help_text="Checked is true.")
    if isinstance(schema.get("enum"), list):
        choices = {format_setting_value(choice): choice for choice in schema["enum"]}
        return forms.TypedChoiceField(
            label=label,
            choices=[(key, key) for key in choices],
            coerce=choices.__getitem__,
            error_messages={"invalid_choice": "Choose one of the listed values."},
        )
    if definition.type in (SettingType.INTEGER, SettingType.NUMBER):
        bounds = {key: schema[key] for key in ("minimum", "maximum") if key in schema}
        attrs = {key[:3]: value for key, value in bounds.items()}
        if definition.type == SettingType.INTEGER:
            return forms.IntegerField(label=label, widget=forms.NumberInput(attrs=attrs))
        attrs["step"] = "any"
        return forms.FloatField(label=label, widget=forms.NumberInput(attrs=attrs))
    if definition.type == SettingType.STRING:
        attrs = {"maxlength": schema["maxLength"]} if "maxLength" in schema else {}
        return forms.CharField(
            label=label, required=False, strip=False, widget=forms.TextInput(attrs=attrs)
        )
    example = '["png", "jpg"]' if definition.type == SettingType.ARRAY else '{"1x": "/a.png"}'
    return JSONValueField(
        label=label,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text=f"JSON, e.g. {example}.",
    )


class SettingValueForm(forms.Form):
    """One setting's value at the wiki layer, typed as the catalog says. The value is also
    checked against the setting's JSON Schema here, to say in words what breaks it; the
    service checks it again and decides."""

    def __init__(self, *args, definition: SettingDefinition, **kwargs):
        super().__init__(*args, **kwargs)
        self.definition = definition
        self.fields["value"] = setting_value_field(definition)

    def clean_value(self) -> Any:
        value = self.cleaned_data["value"]
        expected = JSON_TYPES.get(self.definition.type)
        if expected and (isinstance(value, bool) or not isinstance(value, expected)):
            kind = JSON_TYPE_WORDS[self.definition.type]
            raise forms.ValidationError(f"This setting takes {kind}.")
        validator = jsonschema.Draft202012Validator(self.definition.schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            raise forms.ValidationError(schema_error_in_words(error))
        return value


def schema_error_in_words(error: jsonschema.exceptions.ValidationError) -> str:
    """A JSON Schema error as a sentence: where in the value, and the rule in words."""
    where = " → ".join(
        f"item {step + 1}" if isinstance(step, int) else f"“{shorten(step)}”" for step in error.path
    )
    if "propertyNames" in error.relative_schema_path:  # a map's key broke it, not a value
        name = f"the name “{shorten(error.instance)}”"
        subject = f"in {where}, {name}" if where else name
    else:
        subject = where or "the value"
    words = keyword_in_words(str(error.validator), error.validator_value)
    return f"{subject[:1].upper()}{subject[1:]} {words or 'is not allowed by this setting'}."


def format_setting_value(value: Any) -> str:
    """A value as a person reads it: text as it is, anything else as JSON."""
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
    size_class = django_filters.ChoiceFilter(
        choices=SizeClass.choices, empty_label="any size", label="Size class"
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
