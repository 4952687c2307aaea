#!/usr/bin/env bash
# Headless Chromium for the report's rendering test (tests/report): Debian's `chromium` package.
# Idempotent: does nothing when /usr/bin/chromium exists. Needs root (or sudo) for apt-get.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
  exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "chromium: not installed and not root (no sudo); the report rendering test will be skipped" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they are missing or do not know chromium yet.
if ! apt-cache show chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
fi
$SUDO apt-get install -y -qq chromium
/usr/bin/chromium --version
