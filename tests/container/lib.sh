# Shared by the container tests, sourced: run.sh (docker/Dockerfile's
# image) and addon.sh (the Home Assistant add-on's). A mosquitto on a free
# loopback port, the simulator on a pty, bounded waits, and cleanup of
# everything started.
#
# The sourcing script sets `what` (the name its lines start with) and calls
# ct_init NAME first. Environment: CONTAINER_ENV (default
# ../shared/tools/container-env), M2M_SIM (the host's simulator; default
# the first of build-asan/, build/ that has one).

# The runtime flags container-env run uses, for podman's other commands.
podman_=(podman --runtime runc --cgroup-manager=cgroupfs)

log() { printf '%s: %s\n' "$what" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

# Sets cenv, sim, tmp, name (of the container, from $1) and the cleanup.
ct_init() {
  cenv=${CONTAINER_ENV:-../shared/tools/container-env}
  sim=${M2M_SIM:-}
  if [ -z "$sim" ]; then
    for d in build-asan build; do
      [ -x "$d/tests/sim/modem2mqtt-sim" ] && { sim=$d/tests/sim/modem2mqtt-sim; break; }
    done
  fi
  [ -x "$cenv" ] || { echo "$what: $cenv not found" >&2; exit 1; }
  [ -n "$sim" ] && [ -x "$sim" ] || { echo "$what: no modem2mqtt-sim (set M2M_SIM)" >&2; exit 1; }
  name=m2m-$1-$$
  tmp=$(mktemp -d)
  mosq_pid=""
  sim_pid=""
  failed=1
  trap ct_cleanup EXIT
}

# Extra processes to stop on exit (PIDs).
ct_pids=()

ct_cleanup() {
  set +e
  if [ "$failed" -ne 0 ]; then
    echo "---- container log (info and above)"; "${podman_[@]}" logs "$name" 2>&1 | grep -v ' debug ' | tail -60
    echo "---- simulator (last 30 lines)"; tail -30 "$tmp/sim.out" "$tmp/sim.err" 2>/dev/null
    echo "---- mosquitto (last 20 lines)"; tail -20 "$tmp/mosquitto.log" 2>/dev/null
  fi
  "${podman_[@]}" rm -f -t 2 "$name" >/dev/null 2>&1
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
  [ -n "$mosq_pid" ] && kill "$mosq_pid" 2>/dev/null
  for pid in "${ct_pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}

# Starts mosquitto on a free 127.0.0.1 port: `$1 PORT` writes
# $tmp/mosquitto.conf for that port, logging to $tmp/mosquitto.log. Sets
# port and mosq_pid.
start_mosquitto() {
  local _
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    "$1" "$port"
    # Started as root, mosquitto would switch to its own user, which cannot
    # write into $tmp.
    echo "user $(id -un)" >>"$tmp/mosquitto.conf"
    /usr/sbin/mosquitto -c "$tmp/mosquitto.conf" 2>"$tmp/mosquitto.err" &
    mosq_pid=$!
    for _ in $(seq 50); do
      grep -q "listen socket on port $port" "$tmp/mosquitto.log" 2>/dev/null && break
      kill -0 "$mosq_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$mosq_pid" 2>/dev/null && grep -q "listen socket on port $port" "$tmp/mosquitto.log" && return 0
    kill "$mosq_pid" 2>/dev/null; wait "$mosq_pid" 2>/dev/null || true; mosq_pid=""
  done
  cat "$tmp/mosquitto.err" >&2
  fail "mosquitto did not start"
}

# Starts the simulator on a pty owned root:dialout 0660, as udev leaves a
# USB modem's port. Sets pty and sim_pid.
start_sim() {
  mkfifo "$tmp/sim.in"
  "$sim" --link "$tmp/modem" <"$tmp/sim.in" >"$tmp/sim.out" 2>"$tmp/sim.err" &
  sim_pid=$!
  exec {sim_in}>"$tmp/sim.in"
  pty=$(sim_expect '^pty ' 10 | cut -d' ' -f2)
  chgrp dialout "$pty" && chmod 0660 "$pty"
  log "simulator on $pty"
}

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

# Waits up to 60 s for the retained $base/status to say "ready" while the
# container runs (mq: the mosquitto_* options); logs it.
wait_ready() {
  local status="" _
  for _ in $(seq 60); do
    status=$(mosquitto_sub "${mq[@]}" -t "$base/status" -C 1 -W 1 2>/dev/null || true)
    case $status in *'"state":"ready"'*) break ;; esac
    [ "$("${podman_[@]}" inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ] ||
      fail "the container stopped"
  done
  case $status in *'"state":"ready"'*) ;; *) fail "status not ready within 60 s: '$status'" ;; esac
  log "bridge ready: $status"
}

# The image's HEALTHCHECK (modem2mqtt --health), as Docker would run it.
# The bridge's state changes right after the status is published: retry
# briefly.
check_health() {
  local healthy="" health _
  for _ in $(seq 20); do
    if "${podman_[@]}" healthcheck run "$name" >"$tmp/health.out" 2>&1; then healthy=1; break; fi
    sleep 0.25
  done
  [ -n "$healthy" ] || { cat "$tmp/health.out"; fail "healthcheck failed"; }
  health=$("${podman_[@]}" exec "$name" modem2mqtt --health)
  [ "$health" = "healthy: broker connected, modem ready" ] || fail "--health said '$health'"
  log "healthcheck passes: $health"
}

# SMS out: MQTT -> container -> modem. $1 the command's id, $2 the number.
# mosquitto_rr subscribes to the result topic before it publishes (MQTT 5
# request/response), so the result cannot be missed.
check_sms_send() {
  local result
  result=$(mosquitto_rr "${mq[@]}" -t "$base/sms/send" -e "$base/sms/send/result" -W 30 \
    -m "{\"id\":\"$1\",\"to\":\"$2\",\"text\":\"hello from the $what\"}") ||
    fail "no sms/send result within 30 s"
  case $result in *"\"id\":\"$1\""*'"ok":true'*) ;; *) fail "sms/send result: $result" ;; esac
  sim_expect "^rx AT\+CMGS=" 5 >/dev/null
  sim_expect '^sent [0-9]+ ' 5 >/dev/null
  log "sms/send: $result; the modem saw AT+CMGS"
}

# SMS in: modem -> container -> MQTT. A retained marker on a topic the
# bridge does not use shows when the subscription is active; then the SMS
# is injected.
check_sms_received() {
  local sub_pid received
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
}

# SIGTERM makes the bridge publish "offline" and exit 0. (2>: podman notes
# that it has no systemd to remove its healthcheck timer.)
check_stop() {
  local code avail
  "${podman_[@]}" stop -t 10 "$name" >/dev/null 2>"$tmp/stop.err" || { cat "$tmp/stop.err"; fail "podman stop"; }
  code=$("${podman_[@]}" inspect -f '{{.State.ExitCode}}' "$name")
  [ "$code" = 0 ] || fail "exit status $code after SIGTERM"
  avail=$(mosquitto_sub "${mq[@]}" -t "$base/availability" -C 1 -W 5) || fail "no availability"
  [ "$avail" = offline ] || fail "availability '$avail' after stop"
  log "stopped: exit 0, availability offline"
}
