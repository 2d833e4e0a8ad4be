#!/usr/bin/env bash
# Installs what apigate's build and tests need on a Debian machine, only what is missing.
# Usage: scripts/setup.sh [extra Debian packages...]
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v curl >/dev/null 2>&1 || need+=(curl)
for pkg in "$@"; do
  case "$pkg" in
    redis-server) command -v redis-server >/dev/null 2>&1 || need+=(redis-server) ;;
    prometheus) command -v promtool >/dev/null 2>&1 || need+=(prometheus) ;;
    nginx-light) command -v nginx >/dev/null 2>&1 || need+=(nginx-light) ;;
    wrk) command -v wrk >/dev/null 2>&1 || need+=(wrk) ;;
    *) dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg") ;;
  esac
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust (https://rustup.rs) and run this again" >&2
  exit 1
fi
