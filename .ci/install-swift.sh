#!/bin/sh
# OpenStack Swift (with s3api) and memcached for the S3 driver's tests; tests/swift_server.py
# starts a private cluster from them.
exec "$(dirname "$0")/../bin/ensure-debian-packages" \
    swift swift-proxy swift-object swift-container swift-account python3-swift memcached
