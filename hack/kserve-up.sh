#!/usr/bin/env bash
# KServe on the single-node cluster of hack/cluster-up.sh: its CRDs and inferenceservice-config ConfigMap (the
# pinned module's own files, hack/fetch-kserve-crds.sh) and its real controller manager (hack/build-kserve-controller.sh)
# as a process on the node, in Standard (RawDeployment) mode: an InferenceService becomes a Deployment + Service.
# Left out, as a RawDeployment install without Knative/Istio/cert-manager would leave them: Ingress creation (the
# project routes with Gateway API HTTPRoutes itself) and the admission webhooks (no cert-manager here; the manager's
# webhook server gets a self-signed pair on loopback that no webhook configuration points at, so pods are not
# mutated: the project's predictor fetches its own model, it needs no storage-initializer).
# Idempotent; stopped by hack/cluster-down.sh with the rest of the cluster.
source "$(dirname "$0")/cluster-env.sh"
here="$(cd "$(dirname "$0")" && pwd)"
alive kube-apiserver || die "no cluster: run hack/cluster-up.sh first"
alive kserve-manager && { log "kserve-manager already running"; exit 0; }
began=$SECONDS
bash "$here/build-kserve-controller.sh" >/dev/null
kserve=$(bash "$here/fetch-kserve-crds.sh")
mkdir -p "$RUN/kserve/tmp/k8s-webhook-server/serving-certs" "$RUN/pids" "$RUN/logs"

# until_none WHAT COMMAND...: poll COMMAND (60 s) until it prints nothing; else die with WHAT and what it printed last.
until_none() {
  local what=$1 left; shift
  for _ in $(seq 60); do
    left=$("$@")
    [ -z "$left" ] && return 0
    sleep 1
  done
  die "$what after 60 s: $(echo $left)"
}
crds=$(kubectl_ apply --server-side --force-conflicts -f "$kserve/crds" -o name)
# Established, then served by discovery: the manager builds its REST mapper from discovery once, at start, and a
# kind missing there fails its controller setup ("no matches for kind InferenceService", seen once in CI).
# Polled, not `kubectl wait`: that fails at once on a CRD whose status has no conditions yet (seen in CI:
# ".status.conditions accessor error: <nil>").
not_established() {
  output_of kubectl_ get $crds --no-headers -o 'custom-columns=N:.metadata.name,E:.status.conditions[?(@.type=="Established")].status' \
    | awk '$2 != "True"'
}
not_discovered() { comm -23 <(sed 's|.*/||' <<<"$crds" | sort) <(output_of kubectl_ api-resources -o name | sort); }
until_none "KServe's CRDs not established" not_established
until_none "not served by the API server's discovery" not_discovered
kubectl_ create namespace kserve --dry-run=client -o yaml | kubectl_ apply -f - >/dev/null
# The release's ConfigMap with two settings changed: Standard mode by default, no Ingress objects.
"$PY" - "$kserve/inferenceservice-config.yaml" > "$RUN/kserve/inferenceservice-config.yaml" <<'PY'
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
deploy = json.loads(doc["data"]["deploy"]); deploy["defaultDeploymentMode"] = "Standard"
ingress = json.loads(doc["data"]["ingress"]); ingress["disableIngressCreation"] = True
doc["data"]["deploy"], doc["data"]["ingress"] = json.dumps(deploy), json.dumps(ingress)
print(yaml.safe_dump(doc))
PY
kubectl_ apply -f "$RUN/kserve/inferenceservice-config.yaml" >/dev/null

certs="$RUN/kserve/tmp/k8s-webhook-server/serving-certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=kserve-webhook \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$certs/tls.key" -out "$certs/tls.crt" 2>/dev/null
probe_port=$(free_port)
# The manager's webhook server binds all interfaces on --webhook-port; the port is free and nothing calls it.
( echo "$BASHPID" > "$MEM_CGROUP/cgroup.procs" 2>/dev/null || true
  export KUBECONFIG="$KUBECONFIG_ADMIN" POD_NAMESPACE=kserve TMPDIR="$RUN/kserve/tmp"
  exec "$BIN/kserve-manager" --metrics-addr "127.0.0.1:$(free_port)" --health-probe-addr "127.0.0.1:$probe_port" \
    --webhook-port "$(free_port)" --leader-elect=false
) >"$RUN/logs/kserve-manager.log" 2>&1 &
echo $! > "$RUN/pids/kserve-manager"
for _ in $(seq 120); do
  curl -sf "http://127.0.0.1:$probe_port/readyz" >/dev/null 2>&1 && break
  alive kserve-manager || { tail -n 30 "$RUN/logs/kserve-manager.log" >&2; die "kserve-manager exited"; }
  sleep 1
done
curl -sf "http://127.0.0.1:$probe_port/readyz" >/dev/null || { tail -n 30 "$RUN/logs/kserve-manager.log" >&2; die "kserve-manager not ready"; }
log "kserve-manager $(cat "$TOOLS_DIR/bin/.kserve-manager.version") up in $((SECONDS - began))s (Standard mode; log $RUN/logs/kserve-manager.log)"
