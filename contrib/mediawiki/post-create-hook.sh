#!/bin/sh
# Post-create hook for the MariaDB driver: completes a wiki whose database the portal has
# just created from maintenance/tables-generated.sql. MediaWiki's install.php sees the
# tables, skips creating them, and adds what raw SQL lacks: interwiki rows, the statistics
# row, the administrator account and the Main Page. Running it again changes nothing.
#
#   FARM_POST_CREATE_HOOK="/path/to/contrib/mediawiki/post-create-hook.sh {wiki} {dbname}"
#
# Environment (the worker's):
#   MW_INSTALL_PATH           MediaWiki's folder (default /usr/share/mediawiki)
#   FARM_MW_DB_SERVER         database host[:port] (default 127.0.0.1)
#   FARM_MW_DB_USER           database user (default root)
#   FARM_MW_DB_PASSWORD_FILE  file holding its password (default: empty password)
#   FARM_MW_ADMIN_USER        the administrator's name (default Admin)
#   FARM_MW_ADMIN_PASSWORD_FILE  file holding its password (default: a random one, unused)
#   FARM_MW_SERVER            used by install.php only for messages (default http://localhost)
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 <wiki id> <database name>" >&2
    exit 2
fi
wiki=$1
dbname=$2
case $wiki in *[!a-z0-9]* | "") echo "bad wiki id: $wiki" >&2; exit 2 ;; esac
case $dbname in *[!a-z0-9_]* | "") echo "bad database name: $dbname" >&2; exit 2 ;; esac

MW_INSTALL_PATH=${MW_INSTALL_PATH:-/usr/share/mediawiki}
umask 077
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

if [ -n "${FARM_MW_DB_PASSWORD_FILE:-}" ]; then
    cp "$FARM_MW_DB_PASSWORD_FILE" "$workdir/dbpass"
else
    : > "$workdir/dbpass"
fi
if [ -n "${FARM_MW_ADMIN_PASSWORD_FILE:-}" ]; then
    cp "$FARM_MW_ADMIN_PASSWORD_FILE" "$workdir/pass"
else
    # Nobody knows it: ops set a real one with maintenance/changePassword.php if needed.
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$workdir/pass"
fi

# install.php must not load the farm's LocalSettings.php: it writes its own (thrown away
# with $workdir) and would otherwise refuse to run or configure another wiki.
if ! env -u MW_CONFIG_FILE php "$MW_INSTALL_PATH/maintenance/install.php" \
    --dbtype mysql \
    --dbserver "${FARM_MW_DB_SERVER:-127.0.0.1}" \
    --dbuser "${FARM_MW_DB_USER:-root}" \
    --dbpassfile "$workdir/dbpass" \
    --dbname "$dbname" \
    --confpath "$workdir" \
    --passfile "$workdir/pass" \
    --scriptpath "/$wiki" \
    --server "${FARM_MW_SERVER:-http://localhost}" \
    "$wiki" "${FARM_MW_ADMIN_USER:-Admin}" > "$workdir/install.log" 2>&1
then
    tail -n 30 "$workdir/install.log" >&2
    exit 1
fi
