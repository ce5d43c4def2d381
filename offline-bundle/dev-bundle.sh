#!/usr/bin/env bash
# Builds the development bundle from Debian bookworm's packages: containerd and runc as debs, a
# busybox rootfs for the post-install container check, the etcd and etcdctl binaries (real etcd
# for the external-etcd topology), the image registry binary (Debian's docker-registry, i.e.
# distribution 2.8, for spec.bundle.registry) and the CNI plugins as a tar.gz, with a
# manifest.yaml in the format offline-bundle/README.md describes.
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
# Binaries taken out of Debian packages: "package:path-in-package:bundle-name".
BINARIES=(etcd-server:usr/bin/etcd:etcd etcd-client:usr/bin/etcdctl:etcdctl
	docker-registry:usr/bin/docker-registry:registry)
CNI_PACKAGE=containernetworking-plugins
CNI_DIR=usr/lib/cni

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
for tool in apt-get dpkg-deb sha256sum tar gzip stat awk; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done

# Prints "path sha256 size arch kind name" for each file entry of a manifest this script wrote
# ("-" for a missing name). The manifest is YAML, but this script writes it one key per line in
# a fixed order, so awk reads it back.
manifest_entries() {
	awk '
		function flush() {
			if (path != "") print path, sha, size, arch, kind, (name == "" ? "-" : name)
			path = sha = size = arch = kind = name = ""
		}
		/^  - path: / { flush(); path = $3 }
		/^    sha256: / { sha = $2 }
		/^    size: / { size = $2 }
		/^    arch: / { arch = $2 }
		/^    kind: / { kind = $2 }
		/^    name: / { name = $2 }
		END { flush() }
	' "$1"
}

# "kind:name" of every entry a bundle for $ARCH must have; a cached bundle written before an
# entry was added here lacks it, so it counts as stale and is rebuilt.
required_entries() {
	local p b
	for p in "${PACKAGES[@]}"; do echo "deb:$p"; done
	echo "rootfs:busybox"
	for b in "${BINARIES[@]}"; do echo "binary:${b##*:}"; done
	echo "archive:cni-plugins"
}

# Succeeds when the bundle in $1 lists every required entry for $ARCH and every listed file
# verifies.
bundle_ok() {
	local dir=$1 path sha size arch kind name n=0 want
	local -A have=()
	[[ -f $dir/manifest.yaml ]] || return 1
	while read -r path sha size arch kind name; do
		[[ -f $dir/$path ]] || return 1
		[[ $(stat -c %s "$dir/$path") == "$size" ]] || return 1
		[[ $(sha256sum "$dir/$path" | cut -d' ' -f1) == "$sha" ]] || return 1
		[[ $arch == "$ARCH" || $arch == all ]] && have[$kind:$name]=1
		n=$((n + 1))
	done < <(manifest_entries "$dir/manifest.yaml")
	[[ $n -gt 0 ]] || return 1
	for want in $(required_entries); do
		[[ -n ${have[$want]:-} ]] || return 1
	done
}

# Debian's upstream version: no epoch, no Debian revision, no repack suffix (+ds1, +dfsg), so
# 3.4.23-4+b4 gives 3.4.23 and 1.1.1+ds1-3+b5 gives 1.1.1.
upstream_version() {
	local v=${1#*:}
	v=${v%-*}
	v=${v%%[+~]ds*}
	echo "${v%%[+~]dfsg*}"
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
mkdir -p "$PARTIAL/debs/$ARCH" "$PARTIAL/rootfs/$ARCH" "$PARTIAL/bin/$ARCH" "$PARTIAL/cni/$ARCH"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# apt-get download writes into the current directory; run it where _apt can write.
chmod 0755 "$WORK"
mkdir -p "$WORK/dl"
chmod 0777 "$WORK/dl"
specs=()
extra=()
for b in "${BINARIES[@]}"; do extra+=("${b%%:*}"); done
for p in "${PACKAGES[@]}" "$ROOTFS_PACKAGE" "${extra[@]}" "$CNI_PACKAGE"; do
	if [[ $ARCH == "$(dpkg --print-architecture)" ]]; then specs+=("$p"); else specs+=("$p:$ARCH"); fi
done
(cd "$WORK/dl" && apt-get download -q "${specs[@]}") ||
	die "apt-get download ${specs[*]} failed; hint: run apt-get update, and for a foreign arch dpkg --add-architecture $ARCH"

# The one .deb apt-get download fetched for package $1; checks its name and arch.
deb_of() {
	local p=$1 debs arch
	debs=("$WORK"/dl/"${p}"_*.deb)
	[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || die "expected one ${p}_*.deb from apt-get download, found: ${debs[*]}"
	[[ $(dpkg-deb -f "${debs[0]}" Package) == "$p" ]] || die "${debs[0]} does not carry package '$p'"
	arch=$(dpkg-deb -f "${debs[0]}" Architecture)
	[[ $arch == "$ARCH" || $arch == all ]] || die "${debs[0]} is for arch '$arch', expected '$ARCH'"
	echo "${debs[0]}"
}

# One manifest entry, keys in the fixed order manifest_entries reads back; an optional comment
# line before it says where the file came from.
entries=()
add_entry() {
	local path=$1 arch=$2 kind=$3 name=${4:-} version=${5:-} comment=${6:-}
	local sha size entry=""
	sha=$(sha256sum "$PARTIAL/$path" | cut -d' ' -f1)
	size=$(stat -c %s "$PARTIAL/$path")
	[[ -n $comment ]] && entry="  # $comment
"
	entry+="  - path: $path
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
	deb=$(deb_of "$p")
	rel="debs/$ARCH/$(basename "$deb")"
	cp "$deb" "$PARTIAL/$rel"
	add_entry "$rel" "$(dpkg-deb -f "$deb" Architecture)" deb "$p" "$(dpkg-deb -f "$deb" Version)"
done

# Single executables (etcd, etcdctl, registry), installed on hosts at a path of the playbook's
# choosing.
for b in "${BINARIES[@]}"; do
	IFS=: read -r p inpath name <<<"$b"
	deb=$(deb_of "$p")
	debversion=$(dpkg-deb -f "$deb" Version)
	dpkg-deb -x "$deb" "$WORK/x-$p"
	[[ -f $WORK/x-$p/$inpath ]] || die "$deb has no $inpath"
	rel="bin/$ARCH/$name"
	install -m 0755 "$WORK/x-$p/$inpath" "$PARTIAL/$rel"
	add_entry "$rel" "$ARCH" binary "$name" "$(upstream_version "$debversion")" \
		"/$inpath from Debian's $p $debversion"
done

# The CNI plugins as one tar.gz with the plugin files at its root (hosts unpack it into
# /opt/cni/bin). Sorted, dated at the epoch, owned by root and gzipped without a name or time,
# so the same package always gives the same archive and sha256.
deb=$(deb_of "$CNI_PACKAGE")
debversion=$(dpkg-deb -f "$deb" Version)
dpkg-deb -x "$deb" "$WORK/x-cni"
mkdir -p "$WORK/cni"
for f in "$WORK/x-cni/$CNI_DIR"/*; do
	if [[ -f $f ]]; then install -m 0755 "$f" "$WORK/cni/"; fi
done
(cd "$WORK/cni" && find . -maxdepth 1 -type f -printf '%P\n' | LC_ALL=C sort) >"$WORK/cni.list"
[[ -s $WORK/cni.list ]] || die "$deb has no files in /$CNI_DIR"
cni_rel="cni/$ARCH/cni-plugins.tgz"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
	-cf - -C "$WORK/cni" -T "$WORK/cni.list" | gzip -n -9 >"$PARTIAL/$cni_rel"
add_entry "$cni_rel" "$ARCH" archive cni-plugins "$(upstream_version "$debversion")" \
	"/$CNI_DIR/* ($(wc -l <"$WORK/cni.list") plugins) from Debian's $CNI_PACKAGE $debversion"

# The rootfs: busybox and an sh link, owned by root and dated at the epoch so the tar (and its
# sha256) is the same on every build from the same package.
bbdeb=$(deb_of "$ROOTFS_PACKAGE")
dpkg-deb -x "$bbdeb" "$WORK/bb"
[[ -x $WORK/bb/bin/busybox ]] || die "$bbdeb has no bin/busybox"
mkdir -p "$WORK/rootfs/bin"
install -m 0755 "$WORK/bb/bin/busybox" "$WORK/rootfs/bin/busybox"
ln -s busybox "$WORK/rootfs/bin/sh"
chmod 0755 "$WORK/rootfs" "$WORK/rootfs/bin"
bbversion=$(dpkg-deb -f "$bbdeb" Version)
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
