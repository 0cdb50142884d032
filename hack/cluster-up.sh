#!/usr/bin/env bash
# Bring up a single-node Kubernetes cluster of real components on this machine (kind needs node, CNI and
# storage images from a registry; this needs none):
#   etcd + kube-apiserver (hack/build-{etcd,kube-apiserver}.sh), kube-controller-manager, kube-scheduler, kubelet,
#   kube-proxy (hack/build-kube-node.sh, same pinned version), CoreDNS (hack/build-coredns.sh) as the cluster DNS,
#   Debian's containerd with its own root, state and socket (CRI plugin), Debian's CNI bridge + host-local on the
#   private bridge $BRIDGE, a locally built pause image.
# Idempotent: does nothing while the cluster it started is up. Prints the admin kubeconfig path on stdout.
# Stop it with hack/cluster-down.sh (it stops only what this script started).
source "$(dirname "$0")/cluster-env.sh"
here="$(cd "$(dirname "$0")" && pwd)"
[ "$(id -u)" -eq 0 ] || die "the node (kubelet, containerd, bridge, iptables) needs root"
if alive kubelet && alive kube-apiserver; then log "cluster already up"; echo "$KUBECONFIG_ADMIN"; exit 0; fi
[ -d "$RUN" ] && { log "stale state in $RUN: tearing it down first"; bash "$here/cluster-down.sh"; }
began=$SECONDS

bash "$here/docker-up.sh"
bash "$here/build-etcd.sh"
bash "$here/build-kube-apiserver.sh"
bash "$here/build-kube-node.sh"
bash "$here/build-coredns.sh"
pause_image=$(bash "$here/build-pause-image.sh")
mkdir -p "$RUN"/{pids,logs,pki,cni/net.d,cni/ipam,kubelet} "$CTR_ROOT"

# ---- PKI: one CA; server certs for the API server and kubelet, client certs per identity ----
pki="$RUN/pki"
openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca.key" 2>/dev/null
openssl req -x509 -new -key "$pki/ca.key" -subj /CN=mlp-cluster-ca -days 30 -out "$pki/ca.crt" 2>/dev/null
# cert NAME SUBJECT EXTENDED-KEY-USAGE [SUBJECT-ALT-NAMES]
cert() {
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/$1.key" 2>/dev/null
  openssl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr" 2>/dev/null
  { echo "extendedKeyUsage=$3"; [ -z "${4:-}" ] || echo "subjectAltName=$4"; } > "$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
    -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
}
svc_ip=$("$PY" -c 'import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1]).hosts()))' "$SERVICE_CIDR")
cert apiserver /CN=kube-apiserver serverAuth \
  "IP:$NODE_IP,IP:$svc_ip,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert kubelet-server "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
cert admin /O=system:masters/CN=mlp-admin clientAuth
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
cert apiserver-kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client clientAuth
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
kubeconfig() {
  KUBECONFIG="$RUN/$1.kubeconfig" "$BIN/kubectl" config set-cluster mlp --server "$API_URL" --certificate-authority "$pki/ca.crt" --embed-certs >/dev/null
  KUBECONFIG="$RUN/$1.kubeconfig" "$BIN/kubectl" config set-credentials "$1" --client-certificate "$pki/$2.crt" --client-key "$pki/$2.key" --embed-certs >/dev/null
  KUBECONFIG="$RUN/$1.kubeconfig" "$BIN/kubectl" config set-context mlp --cluster mlp --user "$1" >/dev/null
  KUBECONFIG="$RUN/$1.kubeconfig" "$BIN/kubectl" config use-context mlp >/dev/null
}
kubeconfig admin admin
kubeconfig kubelet kubelet

# ---- network: the private bridge carries the node IP; forwarding only between pods on it ----
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then ip link add "$BRIDGE" type bridge; fi
ip addr replace "$NODE_IP/$BRIDGE_PREFIX" dev "$BRIDGE"
ip link set "$BRIDGE" up
modprobe br_netfilter 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
iptables -N MLP-ISOLATE 2>/dev/null || iptables -F MLP-ISOLATE
iptables -A MLP-ISOLATE -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
iptables -A MLP-ISOLATE -i "$BRIDGE" -j DROP
iptables -A MLP-ISOLATE -o "$BRIDGE" -j DROP
iptables -C FORWARD -j MLP-ISOLATE 2>/dev/null || iptables -I FORWARD 1 -j MLP-ISOLATE
cat > "$RUN/cni/net.d/10-mlp.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "mlp", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$RUN/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
JSON

# ---- processes: each in the memory cgroup that measures the cluster's peak use ----
mkdir -p "$MEM_CGROUP"
echo 0 > "$MEM_CGROUP/memory.max_usage_in_bytes" 2>/dev/null || true
# start NAME COMMAND...: run it in the background, pid in $RUN/pids/NAME, log in $RUN/logs/NAME.log.
start() {
  local name=$1; shift
  ( echo "$BASHPID" > "$MEM_CGROUP/cgroup.procs"; exec "$@" ) >"$RUN/logs/$name.log" 2>&1 &
  echo $! > "$RUN/pids/$name"
}
# wait_for WHAT SECONDS COMMAND...: poll until COMMAND succeeds; on timeout show the logs of what failed.
wait_for() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq "$secs"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  for f in "$RUN"/logs/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done
  die "$what not ready after ${secs}s"
}
etcd_port=$(free_port); peer_port=$(free_port)
start etcd "$BIN/etcd" --name mlp --data-dir "$RUN/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "mlp=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn
wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"

start kube-apiserver "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" --client-ca-file "$pki/ca.crt" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC --allow-privileged=true --v=1
wait_for kube-apiserver 90 kubectl_ get --raw /readyz

# ---- DNS: CoreDNS's kubernetes plugin on the node IP (what kube-dns is elsewhere), the rest to the host's resolver;
# a node process like the control plane, so it needs no image. kubelet points every pod at it (clusterDNS).
dns_ready=$(free_port)
cat > "$RUN/Corefile" <<COREFILE
.:53 {
    bind $NODE_IP
    errors
    ready 127.0.0.1:$dns_ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG_ADMIN mlp
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
}
COREFILE
start coredns "$BIN/coredns" -conf "$RUN/Corefile"
wait_for coredns 60 curl -sf "http://127.0.0.1:$dns_ready/ready"

cat > "$RUN/containerd.toml" <<TOML
version = 2
root = "$CTR_ROOT"
state = "$RUN/containerd-state"
[grpc]
  address = "$CTR_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # root here lacks CAP_SYS_RESOURCE: a negative oom_score_adj (kubelet asks for one) fails inside runc.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
TOML
start containerd containerd --config "$RUN/containerd.toml"
wait_for containerd 30 ctr_ version
bash "$here/cluster-load-images.sh" "$pause_image"

start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$KUBECONFIG_ADMIN" \
  --authentication-kubeconfig "$KUBECONFIG_ADMIN" --authorization-kubeconfig "$KUBECONFIG_ADMIN" \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --use-service-account-credentials --service-cluster-ip-range "$SERVICE_CIDR" \
  --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --v=1
start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$KUBECONFIG_ADMIN" \
  --authentication-kubeconfig "$KUBECONFIG_ADMIN" --authorization-kubeconfig "$KUBECONFIG_ADMIN" \
  --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --v=1

cat > "$RUN/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The kernel here mounts cgroup v1 (hybrid): kubelet >= 1.35 refuses it unless told explicitly.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CTR_SOCK
imageServiceEndpoint: unix://$CTR_SOCK
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
tlsCertFile: $pki/kubelet-server.crt
tlsPrivateKeyFile: $pki/kubelet-server.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
failSwapOn: false
resolvConf: /etc/resolv.conf
# Images are imported, never pulled: keep them however full the disk gets; evict only when nearly out.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
serializeImagePulls: false
rotateCertificates: false
YAML
start kubelet "$BIN/kubelet" --config "$RUN/kubelet.yaml" --kubeconfig "$RUN/kubelet.kubeconfig" \
  --root-dir "$RUN/kubelet" --cert-dir "$RUN/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1

cat > "$RUN/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: 127.0.0.1
# An empty address means 0.0.0.0 to kube-proxy: loopback and free ports instead.
healthzBindAddress: 127.0.0.1:$(free_port)
metricsBindAddress: 127.0.0.1:$(free_port)
clientConnection: {kubeconfig: $KUBECONFIG_ADMIN}
# Leave the machine's conntrack sysctls alone (not ours to change; and root here may not).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
start kube-proxy "$BIN/kube-proxy" --config "$RUN/kube-proxy.yaml" --v=1

wait_for "node $NODE_NAME Ready" 120 kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
# The pods' peak is measured from here (the kubepods cgroup outlives a previous cluster).
echo 0 > /sys/fs/cgroup/memory/kubepods/memory.max_usage_in_bytes 2>/dev/null || true
wait_for "default service account" 60 kubectl_ get serviceaccount default -n default
for name in etcd kube-apiserver coredns containerd kube-controller-manager kube-scheduler kubelet kube-proxy; do
  alive "$name" || { tail -n 30 "$RUN/logs/$name.log" >&2; die "$name exited"; }
done
log "cluster up in $((SECONDS - began))s: node $NODE_NAME ($NODE_IP), pods $POD_CIDR, services $SERVICE_CIDR, DNS $NODE_IP (cluster.local)"
log "kubectl --kubeconfig $KUBECONFIG_ADMIN get nodes"
echo "$KUBECONFIG_ADMIN"
