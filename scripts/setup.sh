#!/usr/bin/env bash
# Install what kubesmith needs on this (Debian) control machine; idempotent and cached:
# OS packages, the Python venv, the binary cache (built from Go modules when empty, or downloaded:
# scripts/fill-cache.sh), the lab image.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(debootstrap systemd-container iproute2 iptables openssh-client gcc libc6-dev
          libseccomp-dev pkg-config busybox-static git ca-certificates
          curl bind9-dnsutils netcat-openbsd)  # the last three: conformance test images
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"

bash scripts/fill-cache.sh
.venv/bin/python deploy.py lab image
