"""`manage.py api_token <username>`: a user's first API token, from the portal host."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from farm.api.tokens import token_create
from farm.errors import ServiceError
from farm.models import ApiTokenScope


class Command(BaseCommand):
    help = "Create an API token for a user and print its secret (shown only this once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="created on the command line")
        parser.add_argument("--scope", choices=ApiTokenScope.values, default=ApiTokenScope.READ)
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args, username: str, name: str, scope: str, **options) -> None:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user {username!r}")
        try:
            token, secret = token_create(
                actor=user, name=name, scope=scope, expires_in_days=options["expires_in_days"]
            )
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stderr.write(
            f"{scope} token {token.prefix} for {username}, expires {token.expires_at:%Y-%m-%d}"
        )
        self.stdout.write(secret)
