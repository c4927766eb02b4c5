#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/test_ui_lab.py, tests/test_web.py), installed
# with apt when it is missing. Never a browser download of Playwright's own: Playwright drives
# /usr/bin/chromium. Without apt (or root), it says so and the browser tests skip themselves.
set -u
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: no apt-get here; the browser tests will be skipped (install Chromium at /usr/bin/chromium)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "ensure-chromium: not root and no password-less sudo; the browser tests will be skipped (apt-get install chromium)" >&2
        exit 0
    fi
fi
echo "ensure-chromium: installing Debian's chromium with apt-get (once)..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
if ! $SUDO apt-get install -y -qq chromium >/dev/null 2>&1; then
    echo "ensure-chromium: apt-get install chromium failed; the browser tests will be skipped" >&2
fi
exit 0
