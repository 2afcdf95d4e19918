#!/usr/bin/env bash
# Programs the tests run for real, from Debian's packages: Chromium for the web chat tests (Playwright
# never downloads a browser) and hey for the load test's smoke run. Installed once when missing and
# this user may; otherwise say how, and let the tests that need them report it.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v hey >/dev/null || missing+=(hey)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[task] installing Debian's ${missing[*]} for the tests (once)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "[task] missing for the tests: ${missing[*]} (apt-get install ${missing[*]})" >&2
fi
