#!/usr/bin/env bash
# Node-RED integration test (ctest -R integration_nodered):
#   run.sh <work dir> <test program>
# Installs node-red (pinned below) from the npm registry into <work dir>
# once (a stamp file keeps it across runs of the same build tree), then runs
# the test program, which starts mosquitto, the simulator, the bridge and
# Node-RED with config/node-red-flow.json.
#
# Exit 77 (ctest: skipped) only when the npm registry cannot be reached;
# a missing node/npm or a failed install with the registry reachable fails.
set -u
work=$1
prog=$2
version=4.1.8   # Node-RED 4.1 runs on Node.js >= 18.5 (Debian 12's is 18.19); 5.x wants 22

node=$(command -v node) || { echo "nodered: node not found (Debian: apt-get install nodejs npm)"; exit 1; }
npm=$(command -v npm) || { echo "nodered: npm not found (Debian: apt-get install nodejs npm)"; exit 1; }

stamp="$work/node_modules/.m2m-node-red-$version"
if [ ! -f "$stamp" ]; then
    mkdir -p "$work"
    start=$(date +%s)
    # --omit=optional: no native bcrypt build (node-red falls back to
    # bcryptjs); --ignore-scripts: nothing runs at install time.
    if ! "$npm" install --prefix "$work" --no-audit --no-fund --omit=optional --ignore-scripts \
            --loglevel=error "node-red@$version" >"$work/npm.log" 2>&1; then
        if ! "$npm" ping >/dev/null 2>&1; then
            echo "SKIPPED: the npm registry is unreachable, so node-red@$version cannot be installed"
            exit 77
        fi
        cat "$work/npm.log"
        echo "nodered: npm install node-red@$version failed (log above)"
        exit 1
    fi
    echo "nodered: npm install node-red@$version took $(( $(date +%s) - start )) s"
    touch "$stamp"
fi

M2M_NODE="$node" M2M_NODE_RED="$work/node_modules/node-red/red.js" exec "$prog"
