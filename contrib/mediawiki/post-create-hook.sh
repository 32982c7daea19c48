#!/bin/sh
# Post-create hook for the database drivers: completes a wiki whose database the portal has
# just created from MediaWiki's schema (maintenance/tables-generated.sql for MariaDB,
# maintenance/sqlite/tables-generated.sql for SQLite). MediaWiki's install.php sees the
# tables, skips creating them, and adds what raw SQL lacks: interwiki rows, the statistics
# row, the administrator account and the Main Page. Running it again changes nothing.
#
#   MariaDB: FARM_POST_CREATE_HOOK="/path/to/contrib/mediawiki/post-create-hook.sh {wiki} {dbname}"
#   SQLite:  FARM_POST_CREATE_HOOK="/path/to/contrib/mediawiki/post-create-hook.sh {wiki} {dbname} {path}"
#
# With a third argument, the database is the SQLite file at that path, which must be named
# the way MediaWiki names it: <dir>/<dbname>.sqlite ($wgSQLiteDataDir/$wgDBname.sqlite).
# The portal's own file is the one completed (install.php is run on that folder); the
# side files install.php makes there for a single-wiki install (wikicache.sqlite,
# <dbname>_l10n_cache.sqlite, <dbname>_jobqueue.sqlite, which the farm's LocalSettings.php
# does not use) are removed again, so that a second run does not fail on them. It leaves
# <dir>/.htaccess ("Require all denied"); MediaWiki itself makes <dir>/locks/ when it opens
# an SQLite database.
#
# Environment (the worker's):
#   MW_INSTALL_PATH           MediaWiki's folder (default /usr/share/mediawiki)
#   FARM_MW_DB_TYPE           mysql (default) or sqlite; sqlite is implied by a third argument
#   FARM_MW_SQLITE_DIR        SQLite only, without a third argument: the databases' folder
#   FARM_MW_DB_SERVER         MariaDB: database host[:port] (default 127.0.0.1)
#   FARM_MW_DB_USER           MariaDB: database user (default root)
#   FARM_MW_DB_PASSWORD_FILE  MariaDB: file holding its password (default: empty password)
#   FARM_MW_ADMIN_USER        the administrator's name (default Admin)
#   FARM_MW_ADMIN_PASSWORD_FILE  file holding its password (default: a random one, unused)
#   FARM_MW_SERVER            used by install.php only for messages (default http://localhost)
set -eu

if [ "$#" -ne 2 ] && [ "$#" -ne 3 ]; then
    echo "usage: $0 <wiki id> <database name> [<sqlite file: dir/<database name>.sqlite>]" >&2
    exit 2
fi
wiki=$1
dbname=$2
case $wiki in *[!a-z0-9]* | "") echo "bad wiki id: $wiki" >&2; exit 2 ;; esac
case $dbname in *[!a-z0-9_]* | "") echo "bad database name: $dbname" >&2; exit 2 ;; esac

dbtype=${FARM_MW_DB_TYPE:-mysql}
sqlite_dir=""
if [ "$#" -eq 3 ]; then
    dbtype=sqlite
    if [ "$(basename -- "$3")" != "$dbname.sqlite" ]; then
        echo "the SQLite file must be named $dbname.sqlite (MediaWiki's \$wgDBname.sqlite): $3" >&2
        exit 2
    fi
    sqlite_dir=$(dirname -- "$3")
elif [ "$dbtype" = sqlite ]; then
    sqlite_dir=${FARM_MW_SQLITE_DIR:-}
    if [ -z "$sqlite_dir" ]; then
        echo "SQLite: give the database file as third argument, or FARM_MW_SQLITE_DIR" >&2
        exit 2
    fi
fi
case $dbtype in
    mysql | mariadb) dbtype=mysql ;;
    sqlite)
        case $sqlite_dir in /*) ;; *) sqlite_dir=$(cd "$sqlite_dir" && pwd) ;; esac
        if [ ! -f "$sqlite_dir/$dbname.sqlite" ]; then
            # install.php would create it; the portal must have made it from the schema.
            echo "no SQLite database $sqlite_dir/$dbname.sqlite: the portal creates it first" >&2
            exit 1
        fi
        ;;
    *) echo "FARM_MW_DB_TYPE must be mysql or sqlite, not $dbtype" >&2; exit 2 ;;
esac

MW_INSTALL_PATH=${MW_INSTALL_PATH:-/usr/share/mediawiki}
umask 077
workdir=$(mktemp -d)

# The single-wiki side files of a SQLite install (see the header). wikicache.sqlite is
# shared by name between wikis: removed only while empty (a stub), never once in use.
remove_sqlite_side_files() {
    [ -n "$sqlite_dir" ] || return 0
    for side in "${dbname}_l10n_cache" "${dbname}_jobqueue"; do
        rm -f "$sqlite_dir/$side.sqlite" "$sqlite_dir/$side.sqlite-wal" \
            "$sqlite_dir/$side.sqlite-shm" "$sqlite_dir/$side.sqlite-journal"
    done
    if [ -f "$sqlite_dir/wikicache.sqlite" ] && [ ! -s "$sqlite_dir/wikicache.sqlite" ]; then
        rm -f "$sqlite_dir/wikicache.sqlite"
    fi
}
trap 'remove_sqlite_side_files; rm -rf "$workdir"' EXIT

if [ -n "${FARM_MW_ADMIN_PASSWORD_FILE:-}" ]; then
    cp "$FARM_MW_ADMIN_PASSWORD_FILE" "$workdir/pass"
else
    # Nobody knows it: ops set a real one with maintenance/changePassword.php if needed.
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$workdir/pass"
fi

if [ "$dbtype" = sqlite ]; then
    # Left by an interrupted run, they would make install.php fail ("table already exists").
    remove_sqlite_side_files
    set -- --dbtype sqlite --dbpath "$sqlite_dir" --dbname "$dbname"
else
    if [ -n "${FARM_MW_DB_PASSWORD_FILE:-}" ]; then
        cp "$FARM_MW_DB_PASSWORD_FILE" "$workdir/dbpass"
    else
        : > "$workdir/dbpass"
    fi
    set -- --dbtype mysql \
        --dbserver "${FARM_MW_DB_SERVER:-127.0.0.1}" \
        --dbuser "${FARM_MW_DB_USER:-root}" \
        --dbpassfile "$workdir/dbpass" \
        --dbname "$dbname"
fi

# install.php must not load the farm's LocalSettings.php: it writes its own (thrown away
# with $workdir) and would otherwise refuse to run or configure another wiki.
if ! env -u MW_CONFIG_FILE -u MW_DB php "$MW_INSTALL_PATH/maintenance/install.php" \
    "$@" \
    --confpath "$workdir" \
    --passfile "$workdir/pass" \
    --scriptpath "/$wiki" \
    --server "${FARM_MW_SERVER:-http://localhost}" \
    "$wiki" "${FARM_MW_ADMIN_USER:-Admin}" > "$workdir/install.log" 2>&1
then
    tail -n 30 "$workdir/install.log" >&2
    exit 1
fi
