# Shared settings of hack/cluster-{up,down,load-images}.sh: one single-node cluster of real components.
# Every address is private to this machine: the node IP is the gateway of the pod bridge (no physical port is
# attached to it) and the control plane listens there or on loopback; pods cannot route off the machine.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CLUSTER_DIR="${MLP_CLUSTER_DIR:-$HOME/.cache/ml-pipeline/cluster}"
RUN="$CLUSTER_DIR/run"                          # this cluster's state: removed by cluster-down
CTR_ROOT="$CLUSTER_DIR/containerd"             # containerd's content store: imported images survive restarts
POD_CIDR="${MLP_POD_CIDR:-10.217.0.0/24}"       # the project's pod range (one node: one /24)
SERVICE_CIDR="${MLP_SERVICE_CIDR:-10.218.0.0/24}"
BRIDGE="${MLP_BRIDGE:-mlp0}"
NODE_NAME="${MLP_NODE_NAME:-mlp-node}"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
NODE_IP=$("$PY" -c 'import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1]).hosts()))' "$POD_CIDR")
BRIDGE_PREFIX="${POD_CIDR#*/}"
API_URL="https://$NODE_IP:6443"
CTR_SOCK="$RUN/containerd.sock"
KUBECONFIG_ADMIN="$RUN/admin.kubeconfig"
MEM_CGROUP=/sys/fs/cgroup/memory/mlp-cluster   # control plane + runtime; pods are in kubelet's /kubepods
BIN="$TOOLS_DIR/bin"
DOCKER="${DOCKER:-/usr/bin/docker}"
ctr_() { ctr --address "$CTR_SOCK" --namespace k8s.io "$@"; }
kubectl_() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
# alive NAME: the process started under that name is still running.
alive() { local p; p=$(cat "$RUN/pids/$1" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }
# mem_report: peak memory of the control plane + runtime (our cgroup) and of all pods (kubelet's kubepods), MB.
# cgroup v1 counts page cache too, so this is an upper bound on what the cluster needs.
mem_report() {
  local cp=0 pods=0
  cp=$(cat "$MEM_CGROUP/memory.max_usage_in_bytes" 2>/dev/null || echo 0)
  pods=$(cat /sys/fs/cgroup/memory/kubepods/memory.max_usage_in_bytes 2>/dev/null || echo 0)
  log "peak memory: control plane + containerd $((cp / 1048576)) MB, pods $((pods / 1048576)) MB, sum $(((cp + pods) / 1048576)) MB"
}
