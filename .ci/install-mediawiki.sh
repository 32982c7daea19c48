#!/bin/sh
# Debian's MediaWiki (1.39) and the PHP it needs for tests/e2e/test_mediawiki.py, which
# serves the wikis with `php -S` and contrib/mediawiki/router.php, and for bench/php.py
# (php-apcu: the include's cache, as on a production php-fpm).
exec "$(dirname "$0")/../bin/ensure-debian-packages" \
    mediawiki php-cli php-mysql php-sqlite3 php-xml php-mbstring php-intl php-apcu
