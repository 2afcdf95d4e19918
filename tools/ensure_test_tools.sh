#!/usr/bin/env bash
# The web chat tests drive Debian's Chromium (Playwright never downloads a browser): install it
# once when missing and this user may; otherwise say how, and let the test report it.
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[task] installing Debian's chromium for the web chat tests (once)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "[task] chromium is missing: install it (apt-get install chromium) for the web chat tests" >&2
fi
