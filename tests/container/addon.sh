#!/usr/bin/env bash
# Home Assistant add-on test: the add-on's image (Dockerfile, config.yaml
# and homeassistant/run at the repository root) run as the Supervisor runs
# it, talking to a modem and to a broker that wants a password.
#
#   tests/container/addon.sh   # after `container-env build --format docker -t modem2mqtt-addon .`
#
# As the Supervisor would: the add-on's options in /data/options.json
# (/data a volume), SUPERVISOR_TOKEN in the environment, the modem's port
# as a device (the simulator's pty, bind-mounted: see run.sh), the host's
# network. The Supervisor's MQTT service is tests/container/fake-supervisor.py
# on a loopback port (M2M_SUPERVISOR_URL), which hands out the broker's
# address and credentials only for the right token. The broker is a
# mosquitto on a free 127.0.0.1 port that refuses anonymous clients.
#
# Checks: config.yaml's version is the bridge's, and it and build.yaml are
# in the forms the Supervisor accepts (addon-config.py); with no broker at all the
# entry point stops with a message that says what to install; with the
# service, the bridge comes up (status "ready") with the service's
# credentials, the password appears in no command line, log or file of
# the container; the options reach the bridge (base topic, discovery
# prefix, notify_to announced and allowed, sms_allow_to enforced,
# state_dir in /data); the image's HEALTHCHECK passes; an SMS goes out
# (AT+CMGS, result ok) and one comes in (sms/received, then deleted from
# the SIM); SIGTERM: "offline", exit 0.
#
# Environment: CONTAINER_ENV, M2M_SIM (see lib.sh), M2M_ADDON_IMAGE
# (modem2mqtt-addon). Needs root. Every wait is bounded; everything started
# is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

what="add-on test"
. tests/container/lib.sh
ct_init addon
image=${M2M_ADDON_IMAGE:-modem2mqtt-addon}
base=addon$$
prefix=hatest$$
notify_to=+4917011111111
token=token-$RANDOM$RANDOM
user=addon
password=pw-$RANDOM$RANDOM-secret

# ---- the add-on's version is the bridge's --------------------------------------
bridge_version=$(sed -n 's/^project(modem2mqtt VERSION \([0-9.]*\) .*/\1/p' CMakeLists.txt)
addon_version=$(sed -n 's/^version: "\(.*\)"$/\1/p' config.yaml)
[ -n "$bridge_version" ] && [ "$addon_version" = "$bridge_version" ] ||
  fail "config.yaml version '$addon_version' is not CMakeLists.txt's '$bridge_version'"
log "version $addon_version in config.yaml and CMakeLists.txt"
tests/container/addon-config.py . || fail "config.yaml or build.yaml: the Supervisor would skip the add-on"
log "config.yaml and build.yaml in the forms the Supervisor accepts"

# ---- the add-on's options, as the Supervisor writes them -----------------------
# config.yaml's defaults with the device and a few settings changed.
mkdir "$tmp/data"
cat >"$tmp/data/options.json" <<EOF
{"device": "/dev/ttyUSB0", "baud": 115200,
 "sms_allow_to": ["+4917012345678"], "calls_allow_to": [],
 "delivery_reports": false, "keep_on_sim": false,
 "base_topic": "$base", "discovery": true, "discovery_prefix": "$prefix",
 "notify_to": "$notify_to", "allow_raw_at": false, "log_level": "debug"}
EOF

# ---- no broker: neither the service nor mqtt_broker ---------------------------
# (Named as the add-on's container below, which cleanup removes: should it
# not stop, timeout ends the wait and cleanup the container.)
code=0
timeout 60 "$cenv" run --rm --name "$name" --network=host -v "$tmp/data:/data" "$image" \
  >"$tmp/nobroker.out" 2>&1 || code=$?
case $code in
  0) fail "started without a broker" ;;
  124) fail "without a broker: still running after 60 s" ;;
esac
grep -q "no MQTT broker: install and start the Mosquitto broker add-on, or set mqtt_broker" "$tmp/nobroker.out" ||
  fail "without a broker: $(cat "$tmp/nobroker.out")"
log "without a broker: $(tail -1 "$tmp/nobroker.out")"

# ---- broker: mosquitto with a password on a free loopback port ------------------
mosquitto_passwd -c -b "$tmp/passwd" "$user" "$password"
chmod 0644 "$tmp/passwd"
password_mosquitto_conf() {
  cat >"$tmp/mosquitto.conf" <<EOF
listener $1 127.0.0.1
allow_anonymous false
password_file $tmp/passwd
persistence false
log_dest file $tmp/mosquitto.log
EOF
}
start_mosquitto password_mosquitto_conf
mq=(-h 127.0.0.1 -p "$port" -u "$user" -P "$password")
log "mosquitto on 127.0.0.1:$port, user $user with a password"

# ---- the Supervisor's MQTT service ----------------------------------------------
SUPERVISOR_TOKEN=$token FAKE_MQTT_HOST=127.0.0.1 FAKE_MQTT_PORT=$port \
  FAKE_MQTT_USER=$user FAKE_MQTT_PASSWORD=$password \
  python3 tests/container/fake-supervisor.py >"$tmp/supervisor.out" 2>"$tmp/supervisor.err" &
ct_pids+=($!)
for _ in $(seq 50); do grep -q '^listening ' "$tmp/supervisor.out" && break; sleep 0.1; done
sport=$(sed -n 's/^listening //p' "$tmp/supervisor.out")
[ -n "$sport" ] || { cat "$tmp/supervisor.err"; fail "the fake Supervisor did not start within 5 s"; }
log "Supervisor API on 127.0.0.1:$sport"

# ---- modem: the simulator on a pty --------------------------------------------
start_sim

# ---- the add-on ------------------------------------------------------------------
"$cenv" run -d --name "$name" --network=host \
  -v "$tmp/data:/data" \
  -v "$pty:/dev/ttyUSB0" \
  -e "SUPERVISOR_TOKEN=$token" \
  -e "M2M_SUPERVISOR_URL=http://127.0.0.1:$sport" \
  "$image" >/dev/null 2>"$tmp/run.err" || { cat "$tmp/run.err" >&2; fail "container did not start"; }
log "add-on $name started"

wait_ready
sim_expect '^rx AT\+CNMI' 1 >/dev/null
grep -qx 'GET /services/mqtt 200' "$tmp/supervisor.out" ||
  fail "the add-on did not get the MQTT service: $(cat "$tmp/supervisor.out")"
log "the add-on asked the Supervisor for the MQTT service, with its token"

# The password: only in the bridge's environment.
"${podman_[@]}" exec "$name" sh -c 'tr "\0" " " </proc/1/cmdline; echo; cat /etc/modem2mqtt/config.json' \
  >"$tmp/inside" 2>&1 || fail "podman exec: $(cat "$tmp/inside")"
"${podman_[@]}" logs "$name" >>"$tmp/inside" 2>&1
grep -q '^modem2mqtt -c /etc/modem2mqtt/config.json' "$tmp/inside" || fail "PID 1 is not the bridge: $(head -1 "$tmp/inside")"
if grep -qF -- "$password" "$tmp/inside"; then fail "the password is in a command line, the config or the log"; fi
if grep -rqF -- "$password" "$tmp/data" ||
   "${podman_[@]}" exec "$name" sh -c 'grep -rqF -e "$0" /etc /tmp /run /root' "$password"; then
  fail "the password is in a file"
fi
log "PID 1: $(head -1 "$tmp/inside"); the password in neither it, a file nor the log"
[ -d "$tmp/data/state" ] || fail "no state_dir in /data"

check_health

# ---- the options reach the bridge ------------------------------------------------
# Discovery under the prefix, with the notify entity texting notify_to.
notify=$(mosquitto_sub "${mq[@]}" -t "$prefix/notify/+/+/config" -C 1 -W 30) ||
  fail "no notify entity under $prefix/ within 30 s"
case $notify in *"$notify_to"*) ;; *) fail "notify config: $notify" ;; esac
log "notify entity announced under $prefix/, texting $notify_to"

# Not in sms_allow_to: refused before the modem sees it.
result=$(mosquitto_rr "${mq[@]}" -t "$base/sms/send" -e "$base/sms/send/result" -W 30 \
  -m '{"id":"addon-0","to":"+4917099999999","text":"not allowed"}') || fail "no sms/send result within 30 s"
case $result in *'"ok":false'*'"not_allowed"'*) ;; *) fail "a number not in sms_allow_to: $result" ;; esac
if grep -q '^rx AT+CMGS=' "$tmp/sim.out"; then fail "AT+CMGS for a refused number"; fi
log "sms/send to an unlisted number: $result"

# ---- SMS both ways, the notify number (allowed without being listed) ------------
check_sms_send addon-1 "$notify_to"
check_sms_received
check_stop

failed=0
log "PASS"
