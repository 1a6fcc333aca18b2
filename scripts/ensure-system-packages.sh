#!/usr/bin/env bash
# Installs the Debian packages the demo and the tests use (swtpm, chromium, tinyproxy) when they are missing and this
# user may install them (root, or sudo without a password). Never fails: callers report what is missing.
missing=()
for package in "$@"; do
  command -v "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
echo "installing with apt-get: ${missing[*]}"
if [ "$(id -u)" = "0" ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo)
else
  echo "cannot install ${missing[*]} (not root, no passwordless sudo): sudo apt-get install ${missing[*]}"
  exit 0
fi
"${as_root[@]}" apt-get update -qq >/dev/null 2>&1 || true
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
  echo "apt-get could not install ${missing[*]}"
exit 0
