#!/usr/bin/env bash
# Container test: the image built from docker/Dockerfile talks to a modem
# and to a broker.
#
#   tests/container/run.sh            # after `container-env build -t modem2mqtt ...`
#
# The simulator (modem2mqtt-sim) runs on the host on a pseudo-terminal,
# which goes into the container as /dev/ttyUSB0, owned root:dialout 0660
# like a real USB modem's port: so this checks the non-root user, its
# dialout group and the serial path, not only the binary. (A pty is passed
# with a bind mount, -v: a node that --device makes with mknod is outside
# the devpts filesystem and the kernel answers EIO. Real devices use
# --device / compose `devices:`.) mosquitto runs on the host on a free
# 127.0.0.1 port with docker/mosquitto.conf; the container uses the host's
# network.
#
# The broker wants a password (the bridge gets it as Compose gives it, a
# file in /run/secrets), and an anonymous client is refused.
#
# Checks: the bridge comes up (status "ready", retained), runs as uid 999
# with group dialout, the image's HEALTHCHECK passes, an SMS sent over MQTT
# reaches the modem (AT+CMGS, result ok), an SMS the modem receives is
# published on sms/received and then deleted from the SIM, SIGTERM makes
# it publish "offline" and exit 0.
#
# Environment: CONTAINER_ENV (default ../shared/tools/container-env),
# M2M_IMAGE (modem2mqtt), M2M_SIM (the host's simulator; default the first
# of build-asan/, build/ that has one). Needs root (podman, chown of the
# pty). Every wait is bounded; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

cenv=${CONTAINER_ENV:-../shared/tools/container-env}
image=${M2M_IMAGE:-modem2mqtt}
sim=${M2M_SIM:-}
if [ -z "$sim" ]; then
  for d in build-asan build; do
    [ -x "$d/tests/sim/modem2mqtt-sim" ] && { sim=$d/tests/sim/modem2mqtt-sim; break; }
  done
fi
[ -x "$cenv" ] || { echo "container test: $cenv not found" >&2; exit 1; }
[ -n "$sim" ] && [ -x "$sim" ] || { echo "container test: no modem2mqtt-sim (set M2M_SIM)" >&2; exit 1; }

# The runtime flags container-env run uses, for podman's other commands.
podman_=(podman --runtime runc --cgroup-manager=cgroupfs)
name=m2m-ci-$$
base=ci$$
tmp=$(mktemp -d)
mosq_pid=""
sim_pid=""
failed=1

log() { printf 'container test: %s\n' "$*"; }

cleanup() {
  set +e
  if [ "$failed" -ne 0 ]; then
    echo "---- container log (info and above)"; "${podman_[@]}" logs "$name" 2>&1 | grep -v ' debug ' | tail -60
    echo "---- simulator (last 30 lines)"; tail -30 "$tmp/sim.out" "$tmp/sim.err" 2>/dev/null
    echo "---- mosquitto (last 20 lines)"; tail -20 "$tmp/mosquitto.log" 2>/dev/null
  fi
  "${podman_[@]}" rm -f -t 2 "$name" >/dev/null 2>&1
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
  [ -n "$mosq_pid" ] && kill "$mosq_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() { log "FAIL: $*"; exit 1; }

# ---- broker: docker/mosquitto.conf on a free loopback port -----------------
# Its password file and the bridge's password, made as the README's
# one-liner makes them (here with the host's mosquitto_passwd).
(umask 077 && openssl rand -hex 16 >"$tmp/mqtt_password" &&
  printf 'modem:%s\n' "$(cat "$tmp/mqtt_password")" >"$tmp/passwd") || fail "password files"
mosquitto_passwd -U "$tmp/passwd" || fail "mosquitto_passwd -U"
# The image's user reads it, as with the Compose secret.
chown 999 "$tmp/mqtt_password"
pw=$(cat "$tmp/mqtt_password")

for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 40000))
  sed -e "s|^listener 1883\$|listener $port 127.0.0.1|" \
      -e "s|^password_file .*|password_file $tmp/passwd|" \
      -e "s|^persistence true\$|persistence false|" \
      -e "/^persistence_location/d" -e "s|^log_dest stdout\$|log_dest file $tmp/mosquitto.log|" \
      docker/mosquitto.conf >"$tmp/mosquitto.conf"
  # Started as root, mosquitto would switch to its own user, which cannot
  # write into $tmp.
  echo "user $(id -un)" >>"$tmp/mosquitto.conf"
  grep -q "^listener $port 127.0.0.1\$" "$tmp/mosquitto.conf" || fail "docker/mosquitto.conf has no 'listener 1883' line"
  /usr/sbin/mosquitto -c "$tmp/mosquitto.conf" 2>"$tmp/mosquitto.err" &
  mosq_pid=$!
  for _ in $(seq 50); do
    grep -q "listen socket on port $port" "$tmp/mosquitto.log" 2>/dev/null && break
    kill -0 "$mosq_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$mosq_pid" 2>/dev/null && grep -q "listen socket on port $port" "$tmp/mosquitto.log" && break
  kill "$mosq_pid" 2>/dev/null; wait "$mosq_pid" 2>/dev/null || true; mosq_pid=""
done
[ -n "$mosq_pid" ] || { cat "$tmp/mosquitto.err" >&2; fail "mosquitto did not start"; }
mq=(-h 127.0.0.1 -p "$port" -u modem -P "$pw")
log "mosquitto on 127.0.0.1:$port (docker/mosquitto.conf)"
# Nobody gets in without a password.
if mosquitto_sub -h 127.0.0.1 -p "$port" -t '#' -C 1 -W 3 >"$tmp/anon.out" 2>&1; then
  fail "the broker let an anonymous client in"
fi
grep -qi "not authori[sz]ed" "$tmp/anon.out" || fail "anonymous client: $(cat "$tmp/anon.out")"
log "an anonymous client is refused"

# ---- modem: the simulator on a pty --------------------------------------------
mkfifo "$tmp/sim.in"
"$sim" --link "$tmp/modem" <"$tmp/sim.in" >"$tmp/sim.out" 2>"$tmp/sim.err" &
sim_pid=$!
exec {sim_in}>"$tmp/sim.in"

# Waits up to $2 seconds for a line of the simulator's output matching the
# extended regex $1; prints it.
sim_expect() {
  local i
  for i in $(seq $(($2 * 10))); do
    grep -E -m1 -- "$1" "$tmp/sim.out" && return 0
    kill -0 "$sim_pid" 2>/dev/null || fail "the simulator exited"
    sleep 0.1
  done
  fail "the simulator did not print /$1/ within $2 s"
}
sim_cmd() { printf '%s\n' "$*" >&"$sim_in"; }

pty=$(sim_expect '^pty ' 10 | cut -d' ' -f2)
# What udev does for a USB modem's port.
chgrp dialout "$pty" && chmod 0660 "$pty"
log "simulator on $pty"

# ---- the container -------------------------------------------------------------
"$cenv" run -d --name "$name" --network=host \
  -v "$pty:/dev/ttyUSB0" \
  -e MODEM2MQTT_PORT=/dev/ttyUSB0 \
  -e "MODEM2MQTT_BROKER=mqtt://127.0.0.1:$port" \
  -e "MODEM2MQTT_BASE_TOPIC=$base" \
  -e MODEM2MQTT_LOG_LEVEL=debug \
  -e MODEM2MQTT_USERNAME=modem \
  -e MODEM2MQTT_PASSWORD_FILE=/run/secrets/mqtt_password \
  -v "$tmp/mqtt_password:/run/secrets/mqtt_password:ro" \
  "$image" >/dev/null 2>"$tmp/run.err" || { cat "$tmp/run.err" >&2; fail "container did not start"; }
log "container $name started"

# Waits up to 60 s for the retained status to say "ready".
status=""
for _ in $(seq 60); do
  status=$(mosquitto_sub "${mq[@]}" -t "$base/status" -C 1 -W 1 2>/dev/null || true)
  case $status in *'"state":"ready"'*) break ;; esac
  [ "$("${podman_[@]}" inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ] ||
    fail "the container stopped"
done
case $status in *'"state":"ready"'*) ;; *) fail "status not ready within 60 s: '$status'" ;; esac
log "bridge ready: $status"
sim_expect '^rx AT\+CNMI' 1 >/dev/null

ids=$("${podman_[@]}" exec "$name" id)
case $ids in "uid=999(modem2mqtt) "*"20(dialout)"*) ;; *) fail "runs as '$ids'" ;; esac
log "runs as: $ids"

# The image's HEALTHCHECK (modem2mqtt --health), as Docker would run it.
# The bridge's state changes right after the status is published: retry
# briefly.
healthy=""
for _ in $(seq 20); do
  if "${podman_[@]}" healthcheck run "$name" >"$tmp/health.out" 2>&1; then healthy=1; break; fi
  sleep 0.25
done
[ -n "$healthy" ] || { cat "$tmp/health.out"; fail "healthcheck failed"; }
health=$("${podman_[@]}" exec "$name" modem2mqtt --health)
[ "$health" = "healthy: broker connected, modem ready" ] || fail "--health said '$health'"
log "healthcheck passes: $health"

# ---- SMS out: MQTT -> container -> modem ------------------------------------
# mosquitto_rr subscribes to the result topic before it publishes (MQTT 5
# request/response), so the result cannot be missed.
result=$(mosquitto_rr "${mq[@]}" -t "$base/sms/send" -e "$base/sms/send/result" -W 30 \
  -m '{"id":"ci-1","to":"+4917012345678","text":"hello from the container test"}') ||
  fail "no sms/send result within 30 s"
case $result in *'"id":"ci-1"'*'"ok":true'*) ;; *) fail "sms/send result: $result" ;; esac
sim_expect '^rx AT\+CMGS=' 5 >/dev/null
sim_expect '^sent [0-9]+ ' 5 >/dev/null
log "sms/send: $result; the modem saw AT+CMGS"

# ---- SMS in: modem -> container -> MQTT ------------------------------------
# A retained marker on a topic the bridge does not use shows when the
# subscription is active; then the SMS is injected.
mosquitto_pub "${mq[@]}" -r -t "$base/ci-sync" -m sync
mosquitto_sub "${mq[@]}" -v -C 2 -W 30 -t "$base/ci-sync" -t "$base/sms/received" >"$tmp/received" &
sub_pid=$!
for _ in $(seq 50); do grep -q sync "$tmp/received" && break; sleep 0.1; done
grep -q sync "$tmp/received" || fail "subscription not active within 5 s"
sim_cmd "sms +4917099999999 hello into the container"
wait "$sub_pid" || fail "no sms/received within 30 s"
mosquitto_pub "${mq[@]}" -r -t "$base/ci-sync" -n
received=$(grep "^$base/sms/received " "$tmp/received") || fail "no sms/received: $(cat "$tmp/received")"
case $received in
  *'"from":"+4917099999999"'*'"text":"hello into the container"'*) ;;
  *) fail "sms/received: $received" ;;
esac
# Deleted from the SIM only after the broker acknowledged the event.
sim_expect '^deleted [0-9]+' 10 >/dev/null
log "sms/received: ${received#* }; deleted from the SIM"

# ---- stop: SIGTERM -> offline, exit 0 ------------------------------------------
# (2>: podman notes that it has no systemd to remove its healthcheck timer.)
"${podman_[@]}" stop -t 10 "$name" >/dev/null 2>"$tmp/stop.err" || { cat "$tmp/stop.err"; fail "podman stop"; }
code=$("${podman_[@]}" inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "exit status $code after SIGTERM"
avail=$(mosquitto_sub "${mq[@]}" -t "$base/availability" -C 1 -W 5) || fail "no availability"
[ "$avail" = offline ] || fail "availability '$avail' after stop"
log "stopped: exit 0, availability offline"

failed=0
log "PASS"
