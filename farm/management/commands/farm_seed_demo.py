"""Seed the embedded demo: users for each role, a second family and a few tags."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from farm.models import Family, Tag
from farm.roles import AUDITOR, OPS, WIKI_ADMIN

# Demo only: these users exist in the embedded default, never with production settings.
DEMO_USERS = (
    ("demo", WIKI_ADMIN, "demo-wiki-admin"),
    ("demo2", WIKI_ADMIN, "demo2-wiki-admin"),
    ("ops", OPS, "demo-ops"),
    ("auditor", AUDITOR, "demo-auditor"),
)


class Command(BaseCommand):
    help = "Create the demo users, a Wikimedia-style family and some tags (idempotent)."

    def handle(self, *args, **options) -> None:
        if not settings.FARM_DEMO:
            # Its passwords are published (README, the login page): never in production.
            raise CommandError(
                "farm_seed_demo refuses to run with production settings (DATABASE_URL set or "
                "DJANGO_DEBUG=0); set FARM_DEMO=1 to seed the demo users anyway."
            )
        User = get_user_model()
        for username, role, password in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.is_staff = role == OPS
                user.save()
            user.groups.add(Group.objects.get_or_create(name=role)[0])
            self.stdout.write(f"user {username:<8} role {role:<10} password {password}")
        Family.objects.get_or_create(
            name="wikimedia",
            defaults={"database_pattern": "{id}wiki", "description": "Wikimedia-style names"},
        )
        for name, priority in (("private", 10), ("beta-features", 5), ("size-large", 0)):
            Tag.objects.get_or_create(name=name, defaults={"priority": priority})
        self.stdout.write(
            "families: default (wiki_{id}), wikimedia ({id}wiki); "
            "tags: private, beta-features, size-large"
        )
