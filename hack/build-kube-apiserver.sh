#!/usr/bin/env bash
# kube-apiserver for the tests' envtest-style API server (hack/build-kubernetes.sh has the how).
exec bash "$(dirname "$0")/build-kubernetes.sh" kube-apiserver
