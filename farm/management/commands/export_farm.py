"""Rewrite every export file atomically in FARM_DATA_DIR/exports: each wiki's own file,
farm.json, siteconfig.json, hosts.json and the dblists."""

from django.core.management.base import BaseCommand, CommandError

from farm import exports


class Command(BaseCommand):
    help = (
        "Rewrite the farm exports for MediaWiki now (wikis/<id>.json, farm.json, "
        "siteconfig.json, hosts.json, dblists), whatever is marked dirty."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Write nothing: fail if a farm-wide file or a wiki's file on disk is missing "
            "or differs from what the registry gives now.",
        )

    def handle(self, *args, check: bool = False, **options) -> None:
        if check:
            self._check()
            return
        result = exports.write_exports()
        self.stdout.write(
            f"wrote {result['path']} with {result['wikis']} wikis, ETag {result['etag']}; "
            f"{result['wiki_files']} wiki files, {result['wiki_files_written']} changed"
        )

    def _check(self) -> None:
        target = exports.export_dir()
        files = exports.render_exports()
        for batch in exports.wiki_id_batches():
            for wiki_id, content in exports.wiki_files(batch).items():
                if content is not None:
                    files[f"{exports.WIKI_DIR}/{wiki_id}.json"] = exports.json_bytes(content)
        stale = [
            relative
            for relative, data in sorted(files.items())
            if not (target / relative).is_file() or (target / relative).read_bytes() != data
        ]
        if stale:
            more = f" and {len(stale) - 20} more" if len(stale) > 20 else ""
            shown = ", ".join(stale[:20]) + more
            raise CommandError(f"exports out of date in {target}: {shown}")
        self.stdout.write(f"{len(files)} export files in {target} are up to date")
