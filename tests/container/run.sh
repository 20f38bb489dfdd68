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

what="container test"
. tests/container/lib.sh
ct_init ci
image=${M2M_IMAGE:-modem2mqtt}
base=ci$$

# ---- broker: docker/mosquitto.conf on a free loopback port -----------------
# Its password file and the bridge's password, made as the README's
# one-liner makes them (here with the host's mosquitto_passwd).
(umask 077 && openssl rand -hex 16 >"$tmp/mqtt_password" &&
  printf 'modem:%s\n' "$(cat "$tmp/mqtt_password")" >"$tmp/passwd") || fail "password files"
mosquitto_passwd -U "$tmp/passwd" || fail "mosquitto_passwd -U"
# The image's user reads it, as with the Compose secret.
chown 999 "$tmp/mqtt_password"
pw=$(cat "$tmp/mqtt_password")
compose_mosquitto_conf() {
  sed -e "s|^listener 1883\$|listener $1 127.0.0.1|" \
      -e "s|^password_file .*|password_file $tmp/passwd|" \
      -e "s|^persistence true\$|persistence false|" \
      -e "/^persistence_location/d" -e "s|^log_dest stdout\$|log_dest file $tmp/mosquitto.log|" \
      docker/mosquitto.conf >"$tmp/mosquitto.conf"
  grep -q "^listener $1 127.0.0.1\$" "$tmp/mosquitto.conf" || fail "docker/mosquitto.conf has no 'listener 1883' line"
}
start_mosquitto compose_mosquitto_conf
mq=(-h 127.0.0.1 -p "$port" -u modem -P "$pw")
log "mosquitto on 127.0.0.1:$port (docker/mosquitto.conf)"
# Nobody gets in without a password.
if mosquitto_sub -h 127.0.0.1 -p "$port" -t '#' -C 1 -W 3 >"$tmp/anon.out" 2>&1; then
  fail "the broker let an anonymous client in"
fi
grep -qi "not authori[sz]ed" "$tmp/anon.out" || fail "anonymous client: $(cat "$tmp/anon.out")"
log "an anonymous client is refused"

# ---- modem: the simulator on a pty --------------------------------------------
start_sim

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

wait_ready
sim_expect '^rx AT\+CNMI' 1 >/dev/null

ids=$("${podman_[@]}" exec "$name" id)
case $ids in "uid=999(modem2mqtt) "*"20(dialout)"*) ;; *) fail "runs as '$ids'" ;; esac
log "runs as: $ids"

check_health
check_sms_send ci-1 +4917012345678
check_sms_received
check_stop

failed=0
log "PASS"
