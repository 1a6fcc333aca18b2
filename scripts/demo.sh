#!/usr/bin/env bash
# One command for the demo on a fresh Debian/Ubuntu machine: installs swtpm when it can, installs the npm
# packages and builds when needed, then runs swtpm + the local emulator + Node-RED (scripts/demo.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-system-packages.sh swtpm
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build --silent
exec node scripts/demo.mjs
