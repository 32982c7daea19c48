-- An example schema change for `manage.py run migrate --sql` (README, "Farm-wide runs").
-- MediaWiki's placeholders are substituted as in the schema load (/*_*/: the table prefix).
-- Expand/contract: the column is only added, so code that does not know it works the same
-- on migrated and unmigrated wikis.
ALTER TABLE /*_*/page ADD COLUMN page_farm_reviewed INTEGER NOT NULL DEFAULT 0;
