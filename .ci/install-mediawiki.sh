#!/bin/sh
# Install Debian's MediaWiki (1.39) and the PHP it needs for tests/e2e/test_mediawiki.py,
# which serves the wikis with `php -S` and contrib/mediawiki/router.php. Does nothing when
# the packages are already installed. The mediawiki package depends on a web server
# (apache2); installing must not leave one running, so service starts are refused while
# apt runs (a policy-rc.d of our own, removed afterwards).
set -eu

PACKAGES="mediawiki php-cli php-mysql php-xml php-mbstring php-intl"

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    echo "install-mediawiki: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=""
fi

policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    own_policy=yes
fi
cleanup() {
    if [ -n "$own_policy" ]; then $SUDO rm -f "$policy"; fi
}
trap cleanup EXIT

echo "install-mediawiki: installing$missing"
# Only refresh the package lists when apt cannot find what it needs.
# shellcheck disable=SC2086
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; then
    $SUDO apt-get update
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi
