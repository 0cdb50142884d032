#!/usr/bin/env bash
# Stop the dockerd that hack/docker-up.sh started (by its recorded pid); leave any other engine alone.
source "$(dirname "$0")/lib.sh"
RUN_DIR="${MLP_RUN_DIR:-$HOME/.cache/ml-pipeline/run}"
pidfile="$RUN_DIR/dockerd.pid"
[ -f "$pidfile" ] || { log "no dockerd started by hack/docker-up.sh"; exit 0; }
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = dockerd ]; then
  kill "$pid"
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  log "dockerd ($pid) stopped"
fi
rm -f "$pidfile"
