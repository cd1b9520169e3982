#!/usr/bin/env bash
# The real browser the web-page tests drive: Debian's Chromium (Playwright's own browser download is not used,
# and would not work without internet). Installs the `chromium` package when /usr/bin/chromium is missing.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi
echo "install-browser: installing Debian's chromium (for the browser tests)" >&2
if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
else
    SUDO=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
    || { "${SUDO[@]}" apt-get update -q >/dev/null && "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium >/dev/null; }
/usr/bin/chromium --version >&2
