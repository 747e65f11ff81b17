#!/usr/bin/env bash
# Install what the benchmarks compare against, when it is missing: OpenSSH (server and
# client) and rsync (system packages; needs root or sudo), and ansible-core (the project's
# `deploy` extra, into .venv). Idempotent.
set -euo pipefail

# ansible-core comes from pyproject's `deploy` extra, with the project and the test tools.
HUBCLUSTER_EXTRAS=lab,test,deploy source "$(dirname "${BASH_SOURCE[0]}")/../scripts/venv.sh"
echo "ansible: $(ansible --version | head -1)"

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
