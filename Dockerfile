# Home Assistant add-on image (config.yaml, DOCS.md). Not the general image:
# that is docker/Dockerfile.
#
# The Supervisor builds an add-on from its own directory, and the add-on
# is this repository's root, so the bridge is compiled from the very
# checkout the add-on store cloned. BUILD_FROM comes from build.yaml (Debian
# bookworm-slim for the machine's architecture); the default serves a
# plain build:
#
#   docker build -t modem2mqtt-addon .
ARG BUILD_FROM=docker.io/library/debian:bookworm-slim

# The build stage is docker/Dockerfile's, line for line, so that a machine
# building both images (CI) builds it once.
FROM ${BUILD_FROM} AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential cmake pkg-config libpaho-mqtt-dev libserialport-dev libcjson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY bridge bridge
COPY config config
COPY tests/sim tests/sim
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DM2M_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build /build -j"$(nproc)" --target modem2mqtt \
 && install -D -m 0755 /build/modem2mqtt /out/usr/bin/modem2mqtt \
 && install -D -m 0644 config/modem2mqtt.1 /out/usr/share/man/man1/modem2mqtt.1 \
 && install -d /out/usr/share/modem2mqtt \
 && install -m 0644 config/*.example.json /out/usr/share/modem2mqtt/

# The bridge's shared libraries, CA certificates for mqtts://, and jq and
# curl for the entry point (the add-on's options, the Supervisor's API).
FROM ${BUILD_FROM}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libpaho-mqtt1.3 libserialport0 libcjson1 ca-certificates jq curl \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -m 0700 /etc/modem2mqtt
COPY --from=build /out/usr /usr
COPY homeassistant/run /usr/lib/modem2mqtt/homeassistant-run

LABEL io.hass.type="addon" \
      org.opencontainers.image.title="modem2mqtt Home Assistant add-on"

# As in docker/Dockerfile; the entry point writes the configuration to
# /etc/modem2mqtt/config.json, where --health finds state_dir. The
# Supervisor's watchdog, when switched on, restarts an unhealthy add-on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["modem2mqtt", "--health"]

# The add-on runs as root, as Home Assistant add-ons do: /data and the
# serial devices the Supervisor maps in belong to root.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/lib/modem2mqtt/homeassistant-run"]
