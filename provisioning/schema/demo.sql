-- The portal's own demo schema: a tiny MediaWiki look-alike with the same placeholders as
-- MediaWiki's maintenance/tables-generated.sql. Portable between SQLite and MariaDB.
-- Point FARM_SCHEMA_SQL at MediaWiki's own file for real wikis.
CREATE TABLE /*_*/page (
  page_id INTEGER NOT NULL PRIMARY KEY,
  page_namespace INTEGER NOT NULL,
  page_title VARCHAR(255) NOT NULL,
  page_latest INTEGER NOT NULL,
  page_touched VARCHAR(14) NOT NULL
) /*$wgDBTableOptions*/;

CREATE TABLE /*_*/revision (
  rev_id INTEGER NOT NULL PRIMARY KEY,
  rev_page INTEGER NOT NULL,
  rev_timestamp VARCHAR(14) NOT NULL,
  rev_comment VARCHAR(255) NOT NULL
) /*$wgDBTableOptions*/;

CREATE TABLE /*_*/text (
  old_id INTEGER NOT NULL PRIMARY KEY,
  old_text TEXT NOT NULL
) /*$wgDBTableOptions*/;

CREATE TABLE /*_*/user (
  user_id INTEGER NOT NULL PRIMARY KEY,
  user_name VARCHAR(255) NOT NULL
) /*$wgDBTableOptions*/;

CREATE TABLE /*_*/site_stats (
  ss_row_id INTEGER NOT NULL PRIMARY KEY,
  ss_total_edits INTEGER NOT NULL,
  ss_good_articles INTEGER NOT NULL
) /*$wgDBTableOptions*/;

INSERT INTO /*_*/page VALUES (1, 0, 'Main_Page', 1, '20260101000000');
INSERT INTO /*_*/revision VALUES (1, 1, '20260101000000', 'Created by the wiki farm portal');
INSERT INTO /*_*/text VALUES (1, 'Welcome to your new wiki.');
INSERT INTO /*_*/site_stats VALUES (1, 1, 1);
