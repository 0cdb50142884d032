#!/usr/bin/env bash
# The node and the rest of the control plane for the local cluster, at kube-apiserver's version
# (hack/build-kubernetes.sh has the how).
#   bash hack/build-kube-node.sh [NAME...]     # default: all four
[ $# -gt 0 ] || set -- kube-controller-manager kube-scheduler kubelet kube-proxy
exec bash "$(dirname "$0")/build-kubernetes.sh" "$@"
