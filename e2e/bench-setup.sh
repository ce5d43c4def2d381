#!/usr/bin/env bash
# Installs what the apply-vs-Ansible benchmark (e2e/benches/apply_vs_ansible.rs) compares
# against: ansible-core from PyPI, in a virtual environment of its own so it neither needs nor
# changes the system's Python packages. The benchmark itself never touches the network; this
# script is the one step that does.
#
# Usage: e2e/bench-setup.sh
#   ANSIBLE_VENV  where the venv goes (default /var/cache/kubegrid/ansible-venv; the
#                 benchmark reads the same variable)
#   PYTHON        the interpreter that creates it (default python3; ansible-core 2.19 needs
#                 Python 3.11 or newer on the controller)
#
# Idempotent: when the venv already has the pinned ansible-core, it exits 0 without
# contacting PyPI.
set -euo pipefail

# Pinned so that benchmark runs compare against the same Ansible; raise it deliberately.
ANSIBLE_CORE_VERSION=2.19.14
VENV=${ANSIBLE_VENV:-/var/cache/kubegrid/ansible-venv}
PYTHON=${PYTHON:-python3}

die() {
	echo "bench-setup: $*" >&2
	exit 1
}

installed_version() {
	"$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ansible-core"))' 2>/dev/null
}

if [[ -x $VENV/bin/ansible-playbook ]] && [[ $(installed_version) == "$ANSIBLE_CORE_VERSION" ]]; then
	echo "bench-setup: ansible-core $ANSIBLE_CORE_VERSION is already in $VENV"
	exit 0
fi

command -v "$PYTHON" >/dev/null || die "'$PYTHON' is not installed; hint: set PYTHON to a Python 3.11+ interpreter"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
	die "$("$PYTHON" --version 2>&1) is too old for ansible-core $ANSIBLE_CORE_VERSION (needs 3.11+); hint: set PYTHON"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null ||
	die "'$PYTHON' lacks the venv module; hint: apt-get install python3-venv"

# A venv left half-made by an interrupted run (no python inside) is rebuilt from scratch.
if [[ ! -x $VENV/bin/python ]]; then
	rm -rf "$VENV"
	"$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "ansible-core==$ANSIBLE_CORE_VERSION" ||
	die "pip install ansible-core==$ANSIBLE_CORE_VERSION into $VENV failed"

[[ $(installed_version) == "$ANSIBLE_CORE_VERSION" ]] ||
	die "$VENV has ansible-core '$(installed_version)' after install, expected $ANSIBLE_CORE_VERSION"
echo "bench-setup: installed ansible-core $ANSIBLE_CORE_VERSION into $VENV"
