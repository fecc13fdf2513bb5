#!/bin/sh
# Headless Chromium for the drift report's rendering test (tests/monitor/test_html.py):
# installs Debian's chromium package when /usr/bin/chromium is missing (needs root or sudo),
# then prints the binary's path. A no-op when it is already installed.
set -eu
BIN=/usr/bin/chromium
if [ ! -x "$BIN" ]; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
    # A lock held by another apt-get run: wait for it rather than fail.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends chromium fonts-dejavu-core >&2
fi
echo "$BIN"
