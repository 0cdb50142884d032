#!/usr/bin/env bash
# Stop the cluster hack/cluster-up.sh started, and only that: processes by their recorded pids, containers through
# its own containerd socket, its bridge and iptables chain. Pods are deleted first so that kubelet tears their
# sandboxes (network namespaces, veths) down itself. Safe to run when nothing is up. The image store is kept.
source "$(dirname "$0")/cluster-env.sh"
[ -d "$RUN" ] || { log "no cluster state in $RUN"; exit 0; }
mem_report
# stop NAME...: SIGTERM the recorded pid (only if it is still the program we started), then SIGKILL after 20 s.
stop() {
  local name pid
  for name in "$@"; do
    pid=$(cat "$RUN/pids/$name" 2>/dev/null) || continue
    if kill -0 "$pid" 2>/dev/null && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "${name:0:15}" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN/pids/$name"
  done
}
stop kserve-manager kube-controller-manager kube-scheduler
if alive kubelet && alive kube-apiserver && alive containerd; then
  # Nothing recreates them now; kubelet sees each pod gone and stops its containers and sandbox (CNI DEL).
  kubectl_ delete pods --all --all-namespaces --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
  for _ in $(seq 60); do [ -z "$(ctr_ tasks ls -q 2>/dev/null)" ] && break; sleep 1; done
fi
stop kubelet kube-proxy
[ -x "$BIN/kube-proxy" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
if alive containerd; then
  for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true; done
  sleep 1
  for task in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$task" >/dev/null 2>&1 || true; done
  for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1 || true; done
fi
stop containerd coredns kube-apiserver etcd
# Shims of our containerd outlive it; they are ours by the socket they were given.
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTR_SOCK" || true); do kill -9 "$pid" 2>/dev/null || true; done
# Mounts left below our state (token tmpfs, sandbox shm, rootfs overlays), deepest first.
awk -v a="$RUN" -v b="$CTR_ROOT" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' /proc/mounts | sort -r |
  while read -r m; do umount -l "$m" 2>/dev/null || true; done
if iptables -C FORWARD -j MLP-ISOLATE 2>/dev/null; then iptables -D FORWARD -j MLP-ISOLATE; fi
iptables -F MLP-ISOLATE 2>/dev/null && iptables -X MLP-ISOLATE 2>/dev/null || true
# kubelet's and kube-proxy's own chains (KUBE-FIREWALL guards 127.0.0.0/8): no other kubelet runs here.
for ipt in iptables ip6tables; do
  for table in filter nat mangle; do
    for chain in INPUT OUTPUT; do
      while "$ipt" -t "$table" -D "$chain" -j KUBE-FIREWALL 2>/dev/null; do :; done
    done
    for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
      "$ipt" -t "$table" -F "$chain" 2>/dev/null && "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
done
ip link del "$BRIDGE" 2>/dev/null || true
rmdir "$MEM_CGROUP" 2>/dev/null || true
rm -rf "$RUN"
log "cluster down"
