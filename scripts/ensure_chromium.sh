#!/usr/bin/env bash
# Make Debian's Chromium available for the browser tests (no browser download
# by Playwright). Installs it with apt-get when missing and we are root;
# otherwise explains why the browser tests will skip.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the browser tests (apt-get)..."
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    echo "chromium installed: $(command -v chromium)"
    exit 0
  fi
  echo "apt-get could not install chromium: browser tests will skip."
  exit 0
fi
echo "chromium is not on PATH and we are not root: browser tests will skip (install the 'chromium' package to run them)."
exit 0
