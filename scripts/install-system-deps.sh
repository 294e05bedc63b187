#!/usr/bin/env bash
# Install the Debian packages hazmon's demo, tests and benchmarks need, if they are missing.
# Usage: scripts/install-system-deps.sh [extra-package ...]
set -euo pipefail
need=()
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto mosquitto-clients)
[ -x /usr/bin/influxd ] || need+=(influxdb influxdb-client)
# Kannel (bearerbox, smsbox) and kannel-extras (fakesmsc) for the SMS gateway tests
[ -x /usr/sbin/bearerbox ] || need+=(kannel)
[ -x /usr/lib/kannel/test/fakesmsc ] || need+=(kannel-extras)
# Debian Chromium (driven by PyPI playwright, no `playwright install`) and CJK fonts for the console tests
[ -x /usr/bin/chromium ] || need+=(chromium)
need+=(fonts-noto-cjk)
need+=("$@")
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian may start system services on install; hazmon always runs its own instances on other
# ports, so stop them rather than leave surprises on 1883/8086.
for svc in mosquitto influxdb kannel; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done
