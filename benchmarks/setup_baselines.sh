#!/usr/bin/env bash
# Install what the benchmarks compare against, when it is missing: OpenSSH (server and
# client) and rsync, for benchmarks/masterfiles_sync.py. Idempotent; needs root (or sudo).
set -euo pipefail

missing=0
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || missing=1
command -v ssh >/dev/null 2>&1 || missing=1
command -v ssh-keygen >/dev/null 2>&1 || missing=1
command -v rsync >/dev/null 2>&1 || missing=1
if [ "$missing" -eq 0 ]; then
    echo "baselines present: $(command -v ssh) $(command -v rsync)"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y openssh-server openssh-client rsync
