"""Write farm.json and the dblists atomically to FARM_DATA_DIR/exports."""

from django.core.management.base import BaseCommand

from farm.exports import write_exports


class Command(BaseCommand):
    help = "Write the farm export (farm.json, dblists) for MediaWiki."

    def handle(self, *args, **options) -> None:
        result = write_exports()
        self.stdout.write(f"wrote {result['path']} with {result['wikis']} wikis")
