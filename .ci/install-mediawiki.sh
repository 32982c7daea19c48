#!/bin/sh
# Debian's MediaWiki (1.39) and the PHP it needs for tests/e2e/test_mediawiki.py, which
# serves the wikis with `php -S` and contrib/mediawiki/router.php.
exec "$(dirname "$0")/../bin/ensure-debian-packages" \
    mediawiki php-cli php-mysql php-xml php-mbstring php-intl
