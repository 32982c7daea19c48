"""Write farm.json, siteconfig.json and the dblists atomically to FARM_DATA_DIR/exports."""

from django.core.management.base import BaseCommand, CommandError

from farm.exports import FARM_FILE, content_etag, export_dir, render_exports, write_exports


class Command(BaseCommand):
    help = "Write the farm exports for MediaWiki (farm.json, siteconfig.json, dblists)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Write nothing: print the ETag of farm.json and fail if a file on disk is "
            "missing or differs from what the registry gives now.",
        )

    def handle(self, *args, check: bool = False, **options) -> None:
        if check:
            self._check()
            return
        result = write_exports()
        self.stdout.write(
            f"wrote {result['path']} with {result['wikis']} wikis, ETag {result['etag']}"
        )

    def _check(self) -> None:
        files = render_exports()
        target = export_dir()
        self.stdout.write(f"farm.json ETag {content_etag(files[FARM_FILE])}")
        stale = [
            relative
            for relative, data in sorted(files.items())
            if not (target / relative).is_file() or (target / relative).read_bytes() != data
        ]
        if stale:
            raise CommandError(f"exports out of date in {target}: {', '.join(stale)}")
        self.stdout.write(f"{len(files)} export files in {target} are up to date")
