"""Put N generated pages of a wiki into the search store, so archives have documents."""

from django.core.management.base import BaseCommand, CommandError

from farm.models import Wiki, WikiState
from provisioning.demo import index_demo_pages


class Command(BaseCommand):
    help = "Index N demo documents for an active wiki in the shared search indices."

    def add_arguments(self, parser) -> None:
        parser.add_argument("wiki_id")
        parser.add_argument("--pages", type=int, default=300)

    def handle(self, *args, wiki_id: str, pages: int, **options) -> None:
        wiki = Wiki.objects.filter(pk=wiki_id).first()
        if wiki is None or wiki.state != WikiState.ACTIVE:
            raise CommandError(f"wiki {wiki_id!r} is not an active wiki")
        if not 1 <= pages <= 1_000_000:
            raise CommandError("--pages must be between 1 and 1000000")
        result = index_demo_pages(wiki, pages=pages)
        self.stdout.write(f"indexed {result['documents']} documents for {wiki_id}")
