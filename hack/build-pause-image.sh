#!/usr/bin/env bash
# The pod sandbox ("pause") image, built here since registry.k8s.io is unreachable: a static Go program that
# sleeps as PID 1, reaps zombies and exits on SIGINT/SIGTERM, in an otherwise empty image. Tagged with the name
# kubelet and containerd expect by default, so nothing has to be told about it. Cached by the hash of this script.
source "$(dirname "$0")/lib.sh"
DOCKER="${DOCKER:-/usr/bin/docker}"
IMAGE="${PAUSE_IMAGE:-registry.k8s.io/pause:3.10}"
key=$(sha256sum "$0" | cut -c1-16)
if [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "mlp.inputs"}}' "$IMAGE" 2>/dev/null)" = "$key" ]; then
  log "pause image $IMAGE cached ($key)"; echo "$IMAGE"; exit 0
fi
need_go
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/root"
cat > "$work/src/main.go" <<'GO'
// pause: hold a pod's namespaces open; reap orphans; exit cleanly when asked.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
(cd "$work/src" && go mod init pause >/dev/null 2>&1 && go build -trimpath -ldflags '-s -w' -o "$work/root/pause" .)
tar -C "$work/root" --numeric-owner --owner=0 --group=0 -cf "$work/pause.tar" pause
"$DOCKER" import --change "LABEL mlp.inputs=$key" --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' \
  "$work/pause.tar" "$IMAGE" >/dev/null
log "pause image $IMAGE built ($key)"
echo "$IMAGE"
