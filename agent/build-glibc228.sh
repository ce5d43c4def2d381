#!/usr/bin/env bash
# Builds kubegrid-agent for the oldest glibc kubegrid supports on a host (2.28: RHEL 8) with
# cargo-zigbuild, and installs each as OUTDIR/kubegrid-agent-<arch> (docs/agent.md).
#
# Usage: agent/build-glibc228.sh [OUTDIR] [ARCH...]
#   OUTDIR  default /var/cache/kubegrid/agent
#   ARCH    amd64 and/or arm64 (default: amd64 arm64); arm64 needs the Rust standard library
#           for aarch64 (`rustup target add aarch64-unknown-linux-gnu`)
#   env     ZIG_PYTHON: the Python whose `-m ziglang` is the zig to use (default
#           /var/cache/kubegrid/zig-venv/bin/python, where .ci/setup installs ziglang);
#           AGENT_TARGET_DIR: cargo's target directory for these builds (default
#           /var/cache/kubegrid/agent-target, apart from the workspace's debug build, whose
#           artifacts a cross build would otherwise share and invalidate).
#
# Idempotent: cargo rebuilds only when the source changed, and an installed agent is replaced
# (atomically, by rename) only when its bytes differ.
set -euo pipefail

die() {
	echo "build-glibc228: $*" >&2
	exit 1
}

OUT=${1:-/var/cache/kubegrid/agent}
[[ $# -gt 1 ]] && shift && ARCHES=("$@") || ARCHES=(amd64 arm64)
REPO=$(cd "$(dirname "$0")/.." && pwd)
ZIG_PYTHON=${ZIG_PYTHON:-/var/cache/kubegrid/zig-venv/bin/python}
TARGET_DIR=${AGENT_TARGET_DIR:-/var/cache/kubegrid/agent-target}
command -v cargo-zigbuild >/dev/null || die "cargo-zigbuild is not installed (.ci/setup installs it)"
"$ZIG_PYTHON" -m ziglang version >/dev/null 2>&1 ||
	die "$ZIG_PYTHON -m ziglang does not run (.ci/setup installs ziglang there; or set ZIG_PYTHON)"

mkdir -p "$OUT"
for arch in "${ARCHES[@]}"; do
	case $arch in
	amd64) triple=x86_64-unknown-linux-gnu ;;
	arm64) triple=aarch64-unknown-linux-gnu ;;
	*) die "unknown architecture '$arch'; expected amd64 or arm64" ;;
	esac
	# cargo-zigbuild would otherwise pick whichever `python3 -m ziglang` or `zig` comes first
	# on PATH; naming the Python pins the zig version.
	(cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR CARGO_ZIGBUILD_PYTHON_PATH=$ZIG_PYTHON \
		cargo zigbuild --release --quiet -p kubegrid-agent --target "$triple.2.28") ||
		die "cargo zigbuild for $triple.2.28 failed"
	built=$TARGET_DIR/$triple/release/kubegrid-agent
	[[ -x $built ]] || die "no agent at $built after the build"
	dest=$OUT/kubegrid-agent-$arch
	if ! cmp -s "$built" "$dest"; then
		install -m 0755 "$built" "$dest.partial"
		mv -f "$dest.partial" "$dest"
		echo "build-glibc228: installed $dest"
	fi
done
