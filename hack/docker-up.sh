#!/usr/bin/env bash
# A Docker engine for the image builds, from Debian only (no registry is reachable): installs docker.io,
# debootstrap, containerd, CNI plugins and iptables when missing, then starts dockerd unless one already answers.
# Idempotent. A dockerd started here is recorded in $RUN_DIR/dockerd.pid so hack/docker-down.sh stops
# that one and never an engine someone else runs.
source "$(dirname "$0")/lib.sh"
RUN_DIR="${MLP_RUN_DIR:-$HOME/.cache/ml-pipeline/run}"
mkdir -p "$RUN_DIR"

pkgs=(docker.io debootstrap containerd runc containernetworking-plugins iptables conntrack socat ethtool)
missing=()
for p in "${pkgs[@]}"; do grep -q 'ok installed' <<<"$(output_of dpkg-query -W -f='${Status}' "$p")" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # policy-rc.d: the packages must not start their own services; this script starts what it needs.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

# Debian's dockerd; /usr/local/bin may hold a newer client only, which talks to it fine.
DOCKER=/usr/bin/docker
if "$DOCKER" info >/dev/null 2>&1; then log "dockerd already running"; exit 0; fi
log "starting dockerd (log: $RUN_DIR/dockerd.log)"
# --iptables/--bridge stay default: builds use --network host; containers get the default bridge.
dockerd --pidfile "$RUN_DIR/dockerd.pid" >"$RUN_DIR/dockerd.log" 2>&1 &
for _ in $(seq 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
"$DOCKER" info >/dev/null 2>&1 || { tail -n 30 "$RUN_DIR/dockerd.log" >&2; die "dockerd did not start"; }
log "dockerd up: $("$DOCKER" version --format '{{.Server.Version}}')"
