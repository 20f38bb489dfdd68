#!/usr/bin/env bash
# `cmake --install` of a build directory into a temporary prefix: the
# binaries, the example config, the man page (renders without warnings,
# documents every option of --help) and the systemd unit (ExecStart under
# the prefix; `systemd-analyze verify` when systemd-analyze is there).
#
#   tests/install/run.sh [BUILD_DIR]     (default build)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "install test: FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/modem2mqtt bin/modem2mqtt-sim share/modem2mqtt/config.example.json \
         share/man/man1/modem2mqtt.1 lib/systemd/system/modem2mqtt.service \
         share/doc/modem2mqtt/LICENSE; do
  [ -f "$prefix/$f" ] || fail "$f not installed"
done

unit=$prefix/lib/systemd/system/modem2mqtt.service
grep -qx "ExecStart=$prefix/bin/modem2mqtt" "$unit" || fail "ExecStart: $(grep ExecStart= "$unit")"
if command -v systemd-analyze >/dev/null; then
  # MANPATH: verify checks that Documentation=man:modem2mqtt(1) exists.
  MANPATH=$prefix/share/man systemd-analyze verify "$unit" || fail "systemd-analyze verify"
  echo "install test: systemd-analyze verify: ok"
else
  echo "install test: systemd-analyze not installed: unit not verified"
fi

page=$prefix/share/man/man1/modem2mqtt.1
if command -v man >/dev/null; then
  warn=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || fail "man -l failed"
  [ -z "$warn" ] || fail "man page warnings: $warn"
  text=$(MANWIDTH=80 man -l "$page" 2>/dev/null)
else
  text=$(cat "$page")
fi
# Every long option of --help is in the man page.
opts=$("$prefix/bin/modem2mqtt" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u)
[ -n "$opts" ] || fail "--help lists no options"
for o in $opts; do
  grep -q -- "${o//-/[-‐]}" <<<"$text" || grep -q -- "\\\\-\\\\-${o#--}" "$page" || fail "man page lacks $o"
done
vars=$("$prefix/bin/modem2mqtt" --help | grep -oE 'MODEM2MQTT_[A-Z_]+' | sort -u)
for v in $vars; do
  grep -q "$v" "$page" || fail "man page lacks $v"
done
echo "install test: PASS ($(echo $opts | wc -w) options, $(echo $vars | wc -w) variables in the man page)"
