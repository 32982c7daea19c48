#!/bin/sh
# Install Debian's OpenStack Swift (with s3api) and memcached for the S3 driver's tests
# (tests/swift_server.py starts a private cluster from them). Does nothing when they are
# already installed; installing never starts a system-wide Swift, the fixture runs its own.
set -eu

PACKAGES="swift swift-proxy swift-object swift-container swift-account python3-swift memcached"

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    echo "install-swift: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=""
fi

echo "install-swift: installing$missing"
# Only refresh the package lists when apt cannot find what it needs.
# shellcheck disable=SC2086
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; then
    $SUDO apt-get update
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi
