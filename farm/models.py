"""The farm registry: families, tags, reserved names, wikis and the audit log.

Lifecycle fields of a Wiki are written only by provisioning's services and engine; nothing
here has behaviour in save() or signals.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from farm.roles import is_ops, sees_all_wikis


class Family(models.Model):
    name = models.CharField(max_length=32, unique=True)
    database_pattern = models.CharField(
        max_length=64,
        default="wiki_{id}",
        help_text="Database name pattern with {id}, e.g. wiki_{id} or {id}wiki.",
    )
    description = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "families"

    def __str__(self) -> str:
        return self.name

    def database_name_for(self, wiki_id: str) -> str:
        return self.database_pattern.replace("{id}", wiki_id)


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)
    priority = models.IntegerField(
        default=0, help_text="Higher wins when two tags give the same setting."
    )
    description = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-priority", "name"]

    def __str__(self) -> str:
        return self.name


class ReservedName(models.Model):
    name = models.CharField(max_length=32, primary_key=True)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WikiState(models.TextChoices):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    # Read-only but still served (Wikimedia's and Miraheze's "closed wiki").
    CLOSED = "closed"
    ARCHIVING = "archiving"
    ARCHIVED = "archived"
    UNARCHIVING = "unarchiving"
    PURGING = "purging"
    PURGED = "purged"


class SizeClass(models.TextChoices):
    """How big a wiki is, from the inventory (provisioning/inventory.py); runs batch by it,
    smallest first. `unknown` until a wiki has been inspected, or when it cannot be."""

    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    XLARGE = "xlarge"
    UNKNOWN = "unknown"


class WikiQuerySet(models.QuerySet):
    def for_user(self, user) -> WikiQuerySet:
        """The wikis `user` may see: ops and auditors all, a wiki admin their own."""
        if not user.is_authenticated:
            return self.none()
        if sees_all_wikis(user):
            return self
        return self.filter(owners=user)

    def live(self) -> WikiQuerySet:
        return self.exclude(state=WikiState.PURGED)


class Wiki(models.Model):
    # The id is the primary key: a purged wiki keeps its row as a tombstone, so the
    # database itself refuses to hand the id out again.
    id = models.CharField(primary_key=True, max_length=32)
    family = models.ForeignKey(Family, on_delete=models.PROTECT, related_name="wikis")
    tags = models.ManyToManyField(Tag, blank=True, related_name="wikis")
    owners = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="wikis", blank=True)
    sitename = models.CharField(max_length=255)
    language = models.CharField(max_length=35, default="en")
    state = models.CharField(
        max_length=16, choices=WikiState.choices, default=WikiState.PROVISIONING, db_index=True
    )
    read_only = models.BooleanField(default=False)
    # Why a closed wiki is closed: MediaWiki shows it ($wgReadOnly).
    closed_reason = models.CharField(max_length=500, blank=True)
    # Set by archive once its dump is verified and before the database is dropped: from
    # then on MediaWiki answers 503, never a database error.
    offline = models.BooleanField(default=False)
    # Derived once at creation from the family pattern and the id; never changed, unique so
    # two families can never map two wikis onto one database.
    database_name = models.CharField(max_length=64, unique=True)
    storage_prefix = models.CharField(max_length=64)
    cluster = models.CharField(max_length=64, default="default", db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    purge_after = models.DateTimeField(null=True, blank=True)
    legal_hold = models.BooleanField(default=False)
    current_archive_id = models.CharField(max_length=40, blank=True)
    archive_manifest = models.JSONField(null=True, blank=True)
    purge_receipt = models.JSONField(null=True, blank=True)
    # Export publishing (farm/publishing.py): a change that affects what MediaWiki reads
    # for this wiki bumps the serial and, if the wiki was clean, records since when it is
    # dirty; the publisher clears the mark only if the serial is still the one it wrote.
    export_serial = models.PositiveBigIntegerField(default=0)
    export_dirty_since = models.DateTimeField(null=True, blank=True, db_index=True)
    size_class = models.CharField(
        max_length=8, choices=SizeClass.choices, default=SizeClass.UNKNOWN, db_index=True
    )
    # A wiki restored as a new id records where it came from: {"wiki", "backup"|"archive"}.
    cloned_from = models.JSONField(null=True, blank=True)

    objects = WikiQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            # The list API's filters combine state with family; created_at orders "newest".
            models.Index(fields=["family", "state"], name="wiki_family_state"),
        ]

    def __str__(self) -> str:
        return self.id


class ClusterLoad(models.Model):
    """How many live wikis each database cluster holds, kept by the lifecycle services so
    that placing a new wiki reads a handful of rows instead of counting the whole farm."""

    name = models.CharField(max_length=64, primary_key=True)
    wikis = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.wikis}"


class ExportPublisher(models.Model):
    """The one row that makes export publishing single-flight and coalesced.

    `requested_at` is set by the first change after a publish (later ones see it set and
    enqueue nothing); `lease_until` is held by the running publisher; the counters say how
    much was written, for the bench and the metrics.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    requested_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=32, blank=True)
    lists_written_at = models.DateTimeField(null=True, blank=True)
    lists_writes = models.PositiveBigIntegerField(default=0)
    wiki_files_written = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"export publisher (lists written {self.lists_writes} times)"


class ExportMark(models.Model):
    """A change to a farm-wide config block (the farm default, a family, a tag) whose wikis
    must be marked dirty: one row written in the change's transaction, whatever the number
    of wikis, turned into their marks by the publisher (farm/publishing.py)."""

    layer = models.CharField(max_length=8)
    target = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.layer}:{self.target}"


class AuditEvent(models.Model):
    """Append-only: who did what to which thing, with before and after."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    operation_id = models.UUIDField(null=True, blank=True, db_index=True)
    # The web request that made the change (X-Request-ID, portal/logs.py): its log lines.
    request_id = models.CharField(max_length=128, blank=True)
    # The event's place in the export stream, given once after it committed (ADR 8): a
    # cursor on it never skips an event whose transaction committed after a later id's.
    sequence = models.PositiveBigIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(action=""), name="audit_action_not_empty")
        ]

    def __str__(self) -> str:
        return (
            f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target_id}"
        )

    def save(self, *args, **kwargs):
        # Integrity, not business logic: an audit log that can be rewritten proves nothing.
        if self.pk is not None:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("audit events are append-only")


class AuditStream(models.Model):
    """The one row whose lock orders the audit export: the sequencer holds it while it
    numbers the events committed since its last turn (farm/audit.py, ADR 8)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    next_sequence = models.PositiveBigIntegerField(default=1)

    def __str__(self) -> str:
        return f"audit stream (next sequence {self.next_sequence})"


# --- API tokens and idempotency records ---------------------------------------------------


class ApiTokenScope(models.TextChoices):
    """Ordered: each scope includes the ones before it."""

    READ = "read"
    WRITE = "write"
    OPS = "ops"


API_TOKEN_SCOPE_ORDER = (ApiTokenScope.READ, ApiTokenScope.WRITE, ApiTokenScope.OPS)


class ApiTokenQuerySet(models.QuerySet):
    def for_user(self, user) -> ApiTokenQuerySet:
        """Ops see every token (to revoke any); everyone else only their own."""
        if not user.is_authenticated:
            return self.none()
        if is_ops(user):
            return self
        return self.filter(owner=user)


class ApiToken(models.Model):
    """A script's credential. Only the sha256 of the secret is stored; the secret is shown
    once, when the token is created."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # The first characters of the token, kept so a person can tell their tokens apart.
    prefix = models.CharField(max_length=16, db_index=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=ApiTokenScope.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… {self.name} ({self.owner_id})"

    def allows(self, scope: str) -> bool:
        return API_TOKEN_SCOPE_ORDER.index(self.scope) >= API_TOKEN_SCOPE_ORDER.index(scope)


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an Idempotency-Key, replayed for repeats."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=128)
    # sha256 of method, path and the canonical JSON body: what "the same request" means.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    location = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.key} ({self.status_code})"


# --- configuration layers (DESIGN section 6) ----------------------------------------------


class SettingType(models.TextChoices):
    """JSON types a setting's value may have (JSON Schema's names)."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


class MergeStrategy(models.TextChoices):
    REPLACE = "replace", "the most specific layer wins"
    MERGE = "merge", "arrays and maps combine down the chain"


class EditableBy(models.TextChoices):
    WIKI_ADMIN = "wiki-admin"
    OPS = "ops"


class SettingDefinition(models.Model):
    """One entry of the settings catalog: a MediaWiki configuration variable."""

    name = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=8, choices=SettingType.choices)
    schema = models.JSONField(help_text="JSON Schema (2020-12) every value must satisfy.")
    # None: no farm-wide default, MediaWiki's own default applies.
    default = models.JSONField(null=True, blank=True)
    merge_strategy = models.CharField(
        max_length=8, choices=MergeStrategy.choices, default=MergeStrategy.REPLACE
    )
    editable_by = models.CharField(
        max_length=16, choices=EditableBy.choices, default=EditableBy.OPS
    )
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConfigLayer(models.TextChoices):
    """From least to most specific; tags are ordered among themselves by priority."""

    DEFAULT = "default"
    FAMILY = "family"
    TAG = "tag"
    WIKI = "wiki"


class ConfigValue(models.Model):
    """The value one config block (a layer and its target) gives to one setting.

    `target` is "" for the farm default, else the family name, tag name or wiki id. A JSON
    null is never stored: a setting without a value at a layer has no row there.
    """

    layer = models.CharField(max_length=8, choices=ConfigLayer.choices)
    target = models.CharField(max_length=64, blank=True)
    setting = models.ForeignKey(SettingDefinition, on_delete=models.PROTECT, related_name="values")
    value = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["layer", "target", "setting__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["layer", "target", "setting"], name="config_value_per_block_setting"
            ),
            models.CheckConstraint(
                condition=Q(layer="default", target="") | (~Q(layer="default") & ~Q(target="")),
                name="config_value_target_matches_layer",
            ),
        ]
        indexes = [models.Index(fields=["layer", "target"], name="config_value_block")]

    def __str__(self) -> str:
        return f"{self.layer}:{self.target} {self.setting_id}"


class ConfigVersionQuerySet(models.QuerySet):
    def for_user(self, user) -> ConfigVersionQuerySet:
        """Ops and auditors see all history; a wiki admin the farm-wide blocks (default,
        families, tags: they shape every wiki) and the blocks of their own wikis."""
        if not user.is_authenticated:
            return self.none()
        if sees_all_wikis(user):
            return self
        own_wikis = Wiki.objects.filter(owners=user).values("pk")
        return self.exclude(layer=ConfigLayer.WIKI) | self.filter(
            layer=ConfigLayer.WIKI, target__in=own_wikis
        )


class ConfigVersion(models.Model):
    """Append-only history: one row per change of one setting in one config block.

    The id is the farm-wide version number, so versions of all blocks are totally ordered
    and "the block as of version N" is well defined. `before`/`after` are None when the
    setting had no value at that layer.
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    layer = models.CharField(max_length=8, choices=ConfigLayer.choices)
    target = models.CharField(max_length=64, blank=True)
    setting = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    # The version a rollback restored; None for an ordinary write.
    rollback_to = models.BigIntegerField(null=True, blank=True)

    objects = ConfigVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["layer", "target", "id"], name="config_version_block")]

    def __str__(self) -> str:
        return f"v{self.pk} {self.layer}:{self.target} {self.setting}"

    def save(self, *args, **kwargs):
        # Integrity, as for audit events: history that can be rewritten proves nothing.
        if self.pk is not None:
            raise ValueError("config versions are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("config versions are append-only")

    @property
    def version(self) -> int:
        return self.pk
