#!/usr/bin/env bash
# Builds the development bundle for the container-runtime slice: Debian's containerd and runc
# packages plus a busybox rootfs for the post-install container check, with a manifest.yaml
# in the format offline-bundle/README.md describes.
#
# Usage: offline-bundle/dev-bundle.sh OUTDIR [ARCH]
#   ARCH defaults to this machine's dpkg architecture (amd64 or arm64). A foreign ARCH needs
#   `dpkg --add-architecture ARCH && apt-get update` first, so apt can see its packages.
#
# Idempotent: when OUTDIR/manifest.yaml exists, covers ARCH and every file it lists still has
# its size and sha256, the script exits 0 without downloading anything. Otherwise it builds
# into OUTDIR.partial and renames that over OUTDIR at the end, so OUTDIR is never half-written.
set -euo pipefail

PACKAGES=(containerd runc)
ROOTFS_PACKAGE=busybox-static

die() {
	echo "dev-bundle: $*" >&2
	exit 1
}

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 OUTDIR [ARCH]"
OUT=${1%/}
ARCH=${2:-$(dpkg --print-architecture)}
case "$ARCH" in
amd64 | arm64) ;;
*) die "unsupported arch '$ARCH'; expected amd64 or arm64" ;;
esac
for tool in apt-get dpkg-deb sha256sum tar stat awk; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done

# Prints "path sha256 size" for each file entry of a manifest this script wrote. The manifest
# is YAML, but this script writes it one key per line in a fixed order, so awk reads it back.
manifest_entries() {
	awk '
		/^  - path: / { path = $3 }
		/^    sha256: / { sha = $2 }
		/^    size: / { print path, sha, $2 }
	' "$1"
}

# Succeeds when the bundle in $1 lists a rootfs for $ARCH and every listed file verifies.
bundle_ok() {
	local dir=$1 path sha size n=0
	[[ -f $dir/manifest.yaml ]] || return 1
	grep -q "^    arch: $ARCH$" "$dir/manifest.yaml" || return 1
	while read -r path sha size; do
		[[ -f $dir/$path ]] || return 1
		[[ $(stat -c %s "$dir/$path") == "$size" ]] || return 1
		[[ $(sha256sum "$dir/$path" | cut -d' ' -f1) == "$sha" ]] || return 1
		n=$((n + 1))
	done < <(manifest_entries "$dir/manifest.yaml")
	[[ $n -gt 0 ]]
}

if bundle_ok "$OUT"; then
	echo "dev-bundle: $OUT is up to date ($ARCH)"
	exit 0
fi

# OUTDIR is replaced wholesale at the end, so refuse a directory that is not a bundle.
if [[ -e $OUT && ! -f $OUT/manifest.yaml ]] && [[ -n $(ls -A "$OUT" 2>/dev/null) || ! -d $OUT ]]; then
	die "$OUT exists and is not a bundle (no manifest.yaml); refusing to replace it"
fi

PARTIAL=$OUT.partial
rm -rf "$PARTIAL"
mkdir -p "$PARTIAL/debs/$ARCH" "$PARTIAL/rootfs/$ARCH"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# apt-get download writes into the current directory; run it where _apt can write.
chmod 0755 "$WORK"
mkdir -p "$WORK/dl"
chmod 0777 "$WORK/dl"
specs=()
for p in "${PACKAGES[@]}" "$ROOTFS_PACKAGE"; do
	if [[ $ARCH == "$(dpkg --print-architecture)" ]]; then specs+=("$p"); else specs+=("$p:$ARCH"); fi
done
(cd "$WORK/dl" && apt-get download -q "${specs[@]}") ||
	die "apt-get download ${specs[*]} failed; hint: run apt-get update, and for a foreign arch dpkg --add-architecture $ARCH"

# One manifest entry, keys in the fixed order manifest_entries reads back.
entries=()
add_entry() {
	local path=$1 arch=$2 kind=$3 name=${4:-} version=${5:-}
	local sha size entry
	sha=$(sha256sum "$PARTIAL/$path" | cut -d' ' -f1)
	size=$(stat -c %s "$PARTIAL/$path")
	entry="  - path: $path
    sha256: $sha
    size: $size
    arch: $arch
    kind: $kind"
	[[ -n $name ]] && entry+="
    name: $name
    version: \"$version\""
	entries+=("$entry")
}

for p in "${PACKAGES[@]}"; do
	debs=("$WORK"/dl/"${p}"_*.deb)
	[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || die "expected one ${p}_*.deb from apt-get download, found: ${debs[*]}"
	deb=${debs[0]}
	name=$(dpkg-deb -f "$deb" Package)
	version=$(dpkg-deb -f "$deb" Version)
	arch=$(dpkg-deb -f "$deb" Architecture)
	[[ $name == "$p" ]] || die "$deb carries package '$name', expected '$p'"
	[[ $arch == "$ARCH" || $arch == all ]] || die "$deb is for arch '$arch', expected '$ARCH'"
	rel="debs/$ARCH/$(basename "$deb")"
	cp "$deb" "$PARTIAL/$rel"
	add_entry "$rel" "$arch" deb "$name" "$version"
done

# The rootfs: busybox and an sh link, owned by root and dated at the epoch so the tar (and its
# sha256) is the same on every build from the same package.
bbdeb=("$WORK"/dl/"${ROOTFS_PACKAGE}"_*.deb)
dpkg-deb -x "${bbdeb[0]}" "$WORK/bb"
[[ -x $WORK/bb/bin/busybox ]] || die "${bbdeb[0]} has no bin/busybox"
mkdir -p "$WORK/rootfs/bin"
install -m 0755 "$WORK/bb/bin/busybox" "$WORK/rootfs/bin/busybox"
ln -s busybox "$WORK/rootfs/bin/sh"
chmod 0755 "$WORK/rootfs" "$WORK/rootfs/bin"
bbversion=$(dpkg-deb -f "${bbdeb[0]}" Version)
rootfs_rel="rootfs/$ARCH/busybox.tar"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
	-cf "$PARTIAL/$rootfs_rel" -C "$WORK/rootfs" .
add_entry "$rootfs_rel" "$ARCH" rootfs busybox "$bbversion"

{
	echo "# kubegrid offline bundle manifest; format: offline-bundle/README.md"
	echo "version: 1"
	echo "name: dev-$ARCH"
	echo "files:"
	printf '%s\n' "${entries[@]}"
} >"$PARTIAL/manifest.yaml"

bundle_ok "$PARTIAL" || die "the bundle just built in $PARTIAL does not verify"
rm -rf "$OUT"
mv "$PARTIAL" "$OUT"
echo "dev-bundle: wrote $OUT ($ARCH, ${#entries[@]} files)"
