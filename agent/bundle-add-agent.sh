#!/usr/bin/env bash
# Adds kubegrid-agent binaries to an existing bundle directory written one key per line (the
# dev and e2e bundles): each goes to agent/kubegrid-agent-<arch> with a `kind: agent` entry,
# replacing an earlier one for that arch. `kubegrid bundle build --agent FILE` does the same
# for the bundles it builds.
#
# Usage: agent/bundle-add-agent.sh BUNDLE_DIR AGENT...
#   The arch is read from each file's ELF header; a file that needs a glibc newer than 2.28
#   (RHEL 8, the oldest host kubegrid supports) is refused (build it with
#   agent/build-glibc228.sh).
#
# Idempotent: when the manifest already lists exactly these agents and their files match,
# nothing changes. Otherwise the bundle is rebuilt in BUNDLE_DIR.partial (hard links; no file
# is rewritten in place, so a bundle linked from this one never changes under its manifest)
# and renamed over BUNDLE_DIR. The old signature no longer matches and is left out: sign the
# bundle again (.ci/setup does).
set -euo pipefail

die() {
	echo "bundle-add-agent: $*" >&2
	exit 1
}

[[ $# -ge 2 ]] || die "usage: $0 BUNDLE_DIR AGENT..."
DIR=${1%/}
shift
[[ -f $DIR/manifest.yaml ]] || die "$DIR is not a bundle directory (no manifest.yaml)"
for tool in od objdump sha256sum stat awk cmp; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
# Entries are appended to the files list, so it must be the manifest's last key.
awk '/^files:$/ { f = 1; next } f && /^[A-Za-z]/ { bad = 1 } END { exit !(f && !bad) }' \
	"$DIR/manifest.yaml" ||
	die "$DIR/manifest.yaml does not end with its files list; this script only edits manifests written one key per line by the dev and e2e bundle scripts"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp "$DIR/manifest.yaml" "$WORK/manifest.yaml"
declare -A FROM=()
for agent in "$@"; do
	[[ -f $agent ]] || die "agent $agent: no such file"
	[[ $(od -An -c -N4 "$agent" | tr -d ' ') == 177ELF ]] ||
		die "agent $agent: not an ELF executable; expected a kubegrid-agent for Linux amd64 or arm64"
	case $(od -An -tx1 -j18 -N2 "$agent" | tr -d ' ') in
	3e00) arch=amd64 ;;
	b700) arch=arm64 ;;
	*) die "agent $agent: its ELF header names neither x86-64 nor AArch64" ;;
	esac
	need=$(objdump -T "$agent" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1 || true)
	if [[ -n $need && $(printf '%s\n' "$need" GLIBC_2.28 | sort -V | tail -n 1) != GLIBC_2.28 ]]; then
		die "agent $agent: it requires $need, newer than GLIBC_2.28 (RHEL 8); build it with agent/build-glibc228.sh"
	fi
	[[ -z ${FROM[$arch]:-} ]] || die "agent $agent: a second agent for $arch (the first is ${FROM[$arch]})"
	FROM[$arch]=$agent
	path=agent/kubegrid-agent-$arch
	# Drop an earlier entry for this path and the comment line this script wrote above it.
	awk -v path="$path" -v note="  # kubegrid-agent for $arch" '
		index($0, note) == 1 { next }
		/^  - path: / { skip = ($3 == path) }
		/^  [-#]/ && !/^  - path: / { skip = 0 }
		!skip { print }
	' "$WORK/manifest.yaml" >"$WORK/next"
	{
		cat "$WORK/next"
		echo "  # kubegrid-agent for $arch, built for glibc 2.28 (agent/build-glibc228.sh); added by agent/bundle-add-agent.sh"
		echo "  - path: $path"
		echo "    sha256: $(sha256sum "$agent" | cut -d' ' -f1)"
		echo "    size: $(stat -c %s "$agent")"
		echo "    arch: $arch"
		echo "    kind: agent"
		echo "    name: kubegrid-agent"
	} >"$WORK/manifest.yaml"
done

same=1
cmp -s "$WORK/manifest.yaml" "$DIR/manifest.yaml" || same=0
for arch in "${!FROM[@]}"; do
	cmp -s "${FROM[$arch]}" "$DIR/agent/kubegrid-agent-$arch" || same=0
done
if [[ $same == 1 ]]; then
	echo "bundle-add-agent: $DIR already has these agents (${!FROM[*]})"
	exit 0
fi

PARTIAL=$DIR.partial
rm -rf "$PARTIAL"
cp -al "$DIR" "$PARTIAL"
rm -f "$PARTIAL/manifest.yaml" "$PARTIAL/manifest.yaml.sig"
mkdir -p "$PARTIAL/agent"
for arch in "${!FROM[@]}"; do
	rm -f "$PARTIAL/agent/kubegrid-agent-$arch"
	install -m 0755 "${FROM[$arch]}" "$PARTIAL/agent/kubegrid-agent-$arch"
done
cp "$WORK/manifest.yaml" "$PARTIAL/manifest.yaml"
rm -rf "$DIR.old"
mv "$DIR" "$DIR.old"
mv "$PARTIAL" "$DIR"
rm -rf "$DIR.old"
echo "bundle-add-agent: added ${!FROM[*]} to $DIR (unsigned now; sign it again)"
