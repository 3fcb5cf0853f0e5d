#!/usr/bin/env bash
# Make Debian's Chromium available for the browser tests (no browser download
# by Playwright), with fonts for Chinese, Japanese, Korean and emoji so the
# screenshots show real glyphs (the atlas is in English and Simplified Chinese).
# Installs what is missing with apt-get when we are root; otherwise explains
# why the browser tests will skip.
set -u
PACKAGES=(chromium fonts-noto-cjk fonts-noto-color-emoji)
have_chromium() { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }
missing=()
have_chromium || missing+=(chromium)
for font in fonts-noto-cjk fonts-noto-color-emoji; do
  dpkg-query -W -f='${Status}' "$font" 2>/dev/null | grep -q "install ok installed" || missing+=("$font")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ${missing[*]} for the browser tests (apt-get)..."
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "installed: ${missing[*]}"
    exit 0
  fi
  echo "apt-get could not install ${missing[*]}: $(have_chromium && echo 'screenshots may lack CJK or emoji glyphs' || echo 'browser tests will skip')."
  exit 0
fi
if have_chromium; then
  echo "${missing[*]} missing and we are not root: screenshots may show boxes for CJK or emoji."
  exit 0
fi
echo "chromium is not on PATH and we are not root: browser tests will skip (install ${PACKAGES[*]} to run them)."
exit 0
