#!/usr/bin/env bash
# One command on a fresh Debian machine (as root): set up, boot the local lab, bootstrap a cluster.
# Hosts: KUBESMITH_LAB_HOSTS (default 3: lab-1 = etcd + master, the others nodes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python deploy.py lab up --hosts "${KUBESMITH_LAB_HOSTS:-3}"
.venv/bin/python deploy.py up
kubectl=$(ls "${KUBESMITH_CACHE:-/var/cache/kubesmith}"/kubernetes/*/*/kubectl | head -1)
"$kubectl" --kubeconfig state/lab/admin.kubeconfig get nodes -o wide
echo "kubeconfig: $PWD/state/lab/admin.kubeconfig (kubectl: $kubectl)"
