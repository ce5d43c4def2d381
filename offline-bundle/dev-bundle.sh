#!/usr/bin/env bash
# Builds the development bundle from Debian's packages, repacked into upstream's release layouts
# the way `kubegrid bundle build` lays out upstream's files:
#   - containerd 2.1 (sid), 1.7 (trixie) and 1.6 (bookworm) as
#     containerd-<v>-linux-<arch>.tar.gz with bin/..., as upstream releases them (`source:
#     archive`, unpacked into /usr/local on hosts); 1.6 is where the upgrade tests start;
#   - runc as one binary (bookworm's: sid's runc 1.3 needs glibc 2.38 and trixie's 1.1.15 needs
#     2.38 too, while lab hosts are bookworm with 2.36; bookworm's needs 2.34 and libseccomp.so.2,
#     which every systemd host has);
#   - etcd and etcdctl 3.5 from sid (real etcd for the external-etcd topology), and bookworm's
#     3.4 (what the upgrade tests start from) under bin/<arch>/<version>/;
#   - bookworm's containerd and runc .debs, for `spec.containerRuntime.source: packages`;
#   - the sandboxed runtimes' .debs (docs/runtimes.md): trixie's runsc (gVisor; a static
#     binary, no dependencies) and bookworm's crun with libyajl2;
#   - the image registry binary (bookworm's docker-registry, i.e. distribution 2.8, for
#     spec.bundle.registry), the CNI plugins as a tar.gz and a busybox rootfs for the
#     post-install container check;
# with a manifest.yaml in the format offline-bundle/README.md describes.
#
# What is taken from trixie and sid is Go, linked against glibc only, and needs at most
# GLIBC_2.34 (checked with `objdump -T` when this was written: containerd 1.7.24 and 2.1.9, ctr,
# the shims, etcd and etcdctl 3.5.30), so it runs on bookworm's 2.36 and on any host from
# glibc 2.34 on. The script checks it again on every build (GLIBC_MAX below).
#
# Usage: offline-bundle/dev-bundle.sh OUTDIR [ARCH]
#   ARCH defaults to this machine's dpkg architecture (amd64 or arm64). A foreign ARCH needs
#   `dpkg --add-architecture ARCH && apt-get update` first, so apt can see bookworm's packages.
#   APT_DIR (env, default /var/cache/kubegrid/apt) holds the sources lists, indexes and caches
#   of the newer releases, one directory per release.
#
# The newer releases come from the same Debian mirror as this machine's own bookworm sources,
# through `apt-get update` and `apt-get download` with their own sources list, state and cache
# directories under APT_DIR: the machine's apt sources, lists and dpkg status are never read
# for them nor written. Their Release files are verified as usual, against this machine's
# /usr/share/keyrings/debian-archive-keyring.gpg: bookworm's debian-archive-keyring carries
# trixie's keys, and sid's InRelease is signed by both the bookworm and the trixie automatic
# signing keys (checked with gpgv when this was written). Should sid move to keys this keyring
# lacks, apt refuses it and the script stops; install a newer debian-archive-keyring
# (bookworm-backports, or trixie's package, which trixie's signed index vouches for).
#
# Idempotent: when OUTDIR/manifest.yaml exists, covers ARCH and every file it lists still has
# its size and sha256, the script exits 0 without downloading anything. Otherwise it builds
# into OUTDIR.partial and renames that over OUTDIR at the end, so OUTDIR is never half-written.
set -euo pipefail

# .debs for the packages path and crun, from bookworm (the machine's own apt).
PACKAGES=(containerd runc crun libyajl2)
# .debs from the newer releases, "release:package": runsc is in Debian from trixie on.
NEWER_DEBS=(trixie:runsc)
ROOTFS_PACKAGE=busybox-static
# containerd release archives: "release:release line the spec asks for". A release whose
# containerd left that line stops the build instead of silently changing the bundle. The
# first is what a lookup without a line gets.
CONTAINERD_ARCHIVES=(sid:2.1 trixie:1.7 bookworm:1.6)
# Binaries taken out of Debian packages: "release:package:path-in-package:bundle-name[:line]".
# With a line, a release whose package left it stops the build. The first entry of a name lies
# at bin/<arch>/<name> (what a lookup without a version gets); later ones of the same name at
# bin/<arch>/<version>/<name>.
BINARIES=(bookworm:runc:usr/sbin/runc:runc
	sid:etcd-server:usr/bin/etcd:etcd:3.5 sid:etcd-client:usr/bin/etcdctl:etcdctl:3.5
	bookworm:etcd-server:usr/bin/etcd:etcd:3.4 bookworm:etcd-client:usr/bin/etcdctl:etcdctl:3.4
	bookworm:docker-registry:usr/bin/docker-registry:registry)
CNI_PACKAGE=containernetworking-plugins
CNI_DIR=usr/lib/cni
# The newest glibc symbol version a repacked binary may need: bookworm's glibc is 2.36.
GLIBC_MAX=2.36
APT_DIR=${APT_DIR:-/var/cache/kubegrid/apt}

die() {
	echo "dev-bundle: $*" >&2
	exit 1
}

# debian_mirror, apt_release and apt_release_update: apt for the newer releases, apart from
# the machine's own apt configuration.
# shellcheck source=offline-bundle/debian-apt.sh
. "$(dirname "$0")/debian-apt.sh"

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 OUTDIR [ARCH]"
OUT=${1%/}
ARCH=${2:-$(dpkg --print-architecture)}
case "$ARCH" in
amd64 | arm64) ;;
*) die "unsupported arch '$ARCH'; expected amd64 or arm64" ;;
esac
for tool in apt-get dpkg-deb sha256sum tar gzip stat awk objdump; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done

# Prints "path sha256 size arch kind name version" for each file entry of a manifest this
# script wrote ("-" for a missing name or version). The manifest is YAML, but this script
# writes it one key per line in a fixed order, so awk reads it back.
manifest_entries() {
	awk '
		function flush() {
			if (path != "") print path, sha, size, arch, kind, (name == "" ? "-" : name), (version == "" ? "-" : version)
			path = sha = size = arch = kind = name = version = ""
		}
		/^  - path: / { flush(); path = $3 }
		/^    sha256: / { sha = $2 }
		/^    size: / { size = $2 }
		/^    arch: / { arch = $2 }
		/^    kind: / { kind = $2 }
		/^    name: / { name = $2 }
		/^    version: / { version = $2; gsub(/"/, "", version) }
		END { flush() }
	' "$1"
}

# "kind:name" of every entry a bundle for $ARCH must have, and "archive:containerd@LINE" for
# each containerd line; a cached bundle written before an entry was added here lacks it, so it
# counts as stale and is rebuilt.
required_entries() {
	local p b c
	for p in "${PACKAGES[@]}"; do echo "deb:$p"; done
	for p in "${NEWER_DEBS[@]}"; do echo "deb:${p#*:}"; done
	for c in "${CONTAINERD_ARCHIVES[@]}"; do echo "archive:containerd@${c#*:}"; done
	echo "rootfs:busybox"
	for b in "${BINARIES[@]}"; do
		IFS=: read -r _ _ _ name line <<<"$b"
		echo "binary:$name${line:+@$line}"
	done
	echo "archive:cni-plugins"
}

# Succeeds when the bundle in $1 lists every required entry for $ARCH and every listed file
# verifies.
bundle_ok() {
	local dir=$1 path sha size arch kind name version n=0 want
	local -A have=()
	[[ -f $dir/manifest.yaml ]] || return 1
	while read -r path sha size arch kind name version; do
		[[ -f $dir/$path ]] || return 1
		[[ $(stat -c %s "$dir/$path") == "$size" ]] || return 1
		[[ $(sha256sum "$dir/$path" | cut -d' ' -f1) == "$sha" ]] || return 1
		if [[ $arch == "$ARCH" || $arch == all ]]; then
			have[$kind:$name]=1
			have[$kind:$name@$(cut -d. -f1,2 <<<"$version")]=1
		fi
		n=$((n + 1))
	done < <(manifest_entries "$dir/manifest.yaml")
	[[ $n -gt 0 ]] || return 1
	for want in $(required_entries); do
		[[ -n ${have[$want]:-} ]] || return 1
	done
}

# Debian's upstream version: no epoch, no Debian revision, no repack suffix (+ds1, ~ds1,
# +dfsg), so 3.4.23-4+b4 gives 3.4.23, 1.1.1+ds1-3+b5 gives 1.1.1 and 1.7.24~ds1-6 gives 1.7.24.
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
mkdir -p "$PARTIAL/debs/$ARCH" "$PARTIAL/rootfs/$ARCH" "$PARTIAL/bin/$ARCH" "$PARTIAL/cni/$ARCH" \
	"$PARTIAL/containerd/$ARCH"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# apt-get download writes into the current directory; run it where _apt can write.
chmod 0755 "$WORK"

# Downloads packages "$@" of release $1 into $WORK/dl-$1.
download() {
	local rel=$1 specs=() p
	shift
	mkdir -p "$WORK/dl-$rel"
	chmod 0777 "$WORK/dl-$rel"
	if [[ $rel == bookworm ]]; then
		# bookworm is this machine's release: its own apt, read only.
		for p in "$@"; do
			if [[ $ARCH == "$(dpkg --print-architecture)" ]]; then specs+=("$p"); else specs+=("$p:$ARCH"); fi
		done
		(cd "$WORK/dl-$rel" && apt-get download -q "${specs[@]}") ||
			die "apt-get download ${specs[*]} failed; hint: run apt-get update, and for a foreign arch dpkg --add-architecture $ARCH"
	else
		(cd "$WORK/dl-$rel" && apt_release "$rel" download "$@") ||
			die "apt-get download $* from Debian $rel failed (its apt state: $APT_DIR/$rel)"
	fi
}

[[ $(. /etc/os-release && echo "${VERSION_CODENAME:-}") == bookworm ]] ||
	die "this script takes its .debs from the machine's own apt, which must be Debian bookworm"
MIRROR=$(debian_mirror)
[[ -n $MIRROR ]] || die "no apt source in /etc/apt/sources.list* serves bookworm; cannot tell which Debian mirror to use"
declare -A wanted=()
for c in "${CONTAINERD_ARCHIVES[@]}"; do wanted[${c%%:*}]+=" containerd"; done
for b in "${BINARIES[@]}"; do
	IFS=: read -r rel p _ _ _ <<<"$b"
	wanted[$rel]+=" $p"
done
for d in "${NEWER_DEBS[@]}"; do wanted[${d%%:*}]+=" ${d#*:}"; done
wanted[bookworm]+=" ${PACKAGES[*]} $ROOTFS_PACKAGE $CNI_PACKAGE"
for rel in "${!wanted[@]}"; do
	if [[ $rel != bookworm ]]; then
		apt_release_update "$rel" "$MIRROR" "$WORK/update-$rel.log"
	fi
	# shellcheck disable=SC2086
	download "$rel" $(tr ' ' '\n' <<<"${wanted[$rel]}" | sort -u)
done

# The one .deb of package $2 that apt-get download fetched from release $1; checks its name
# and arch.
deb_of() {
	local rel=$1 p=$2 debs arch
	debs=("$WORK/dl-$rel/${p}"_*.deb)
	[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || die "expected one ${p}_*.deb from apt-get download ($rel), found: ${debs[*]}"
	[[ $(dpkg-deb -f "${debs[0]}" Package) == "$p" ]] || die "${debs[0]} does not carry package '$p'"
	arch=$(dpkg-deb -f "${debs[0]}" Architecture)
	[[ $arch == "$ARCH" || $arch == all ]] || die "${debs[0]} is for arch '$arch', expected '$ARCH'"
	echo "${debs[0]}"
}

# Refuses an executable that needs a newer glibc than bookworm's, so nothing in the bundle
# fails to start on a lab host.
check_glibc() {
	local f=$1 need
	need=$(objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
	[[ -z $need ]] && return 0
	[[ $(printf '%s\n%s\n' "$need" "$GLIBC_MAX" | sort -V | tail -n 1) == "$GLIBC_MAX" ]] ||
		die "$f needs glibc $need, newer than $GLIBC_MAX (Debian bookworm's); take it from an older release"
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

# A reproducible tar.gz of the members of directory $1 listed in $2, directories as entries of
# their own (sorted, dated at the epoch, owned by root, gzipped without a name or time): the
# same packages always give the same sha256.
repack() {
	local dir=$1 list=$2 out=$3
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu --no-recursion \
		-cf - -C "$dir" -T "$list" | gzip -n -9 >"$out"
}

for p in "${PACKAGES[@]}"; do
	deb=$(deb_of bookworm "$p")
	rel="debs/$ARCH/$(basename "$deb")"
	cp "$deb" "$PARTIAL/$rel"
	add_entry "$rel" "$(dpkg-deb -f "$deb" Architecture)" deb "$p" "$(dpkg-deb -f "$deb" Version)"
done

for d in "${NEWER_DEBS[@]}"; do
	IFS=: read -r release p <<<"$d"
	deb=$(deb_of "$release" "$p")
	rel="debs/$ARCH/$(basename "$deb")"
	cp "$deb" "$PARTIAL/$rel"
	add_entry "$rel" "$(dpkg-deb -f "$deb" Architecture)" deb "$p" "$(dpkg-deb -f "$deb" Version)" \
		"Debian $release's $p"
done

# containerd as upstream releases it: containerd-<v>-linux-<arch>.tar.gz with the daemon, the
# shims and ctr under bin/ (Debian's /usr/bin holds exactly those), unpacked into /usr/local.
for c in "${CONTAINERD_ARCHIVES[@]}"; do
	IFS=: read -r release line <<<"$c"
	deb=$(deb_of "$release" containerd)
	debversion=$(dpkg-deb -f "$deb" Version)
	version=$(upstream_version "$debversion")
	[[ $version == "$line".* ]] ||
		die "Debian $release's containerd is $debversion, no longer on the $line line this bundle carries; update CONTAINERD_ARCHIVES and the specs that ask for $line"
	x=$WORK/x-containerd-$release
	dpkg-deb -x "$deb" "$x"
	mkdir -p "$x-layout/bin"
	for f in "$x"/usr/bin/*; do
		[[ -f $f ]] || continue
		check_glibc "$f"
		install -m 0755 "$f" "$x-layout/bin/"
	done
	[[ -x $x-layout/bin/containerd && -x $x-layout/bin/containerd-shim-runc-v2 ]] ||
		die "$deb has no usr/bin/containerd and usr/bin/containerd-shim-runc-v2"
	chmod 0755 "$x-layout/bin"
	(cd "$x-layout" && find bin | LC_ALL=C sort) >"$WORK/containerd-$release.list"
	out="containerd/$ARCH/containerd-$version-linux-$ARCH.tar.gz"
	repack "$x-layout" "$WORK/containerd-$release.list" "$PARTIAL/$out"
	add_entry "$out" "$ARCH" archive containerd "$version" \
		"bin/{$(cd "$x-layout/bin" && ls | paste -sd, -)} from /usr/bin of Debian $release's containerd $debversion"
done

# Single executables (runc, etcd, etcdctl, registry), installed on hosts at a path of the
# playbook's choosing.
declare -A binary_seen=()
for b in "${BINARIES[@]}"; do
	IFS=: read -r release p inpath name line <<<"$b"
	deb=$(deb_of "$release" "$p")
	debversion=$(dpkg-deb -f "$deb" Version)
	version=$(upstream_version "$debversion")
	[[ -z $line || $version == "$line".* ]] ||
		die "Debian $release's $p is $debversion, no longer on the $line line this bundle carries; update BINARIES"
	dpkg-deb -x "$deb" "$WORK/x-$release-$p"
	[[ -f $WORK/x-$release-$p/$inpath ]] || die "$deb has no $inpath"
	check_glibc "$WORK/x-$release-$p/$inpath"
	if [[ -n ${binary_seen[$name]:-} ]]; then
		rel="bin/$ARCH/$version/$name"
		mkdir -p "$PARTIAL/bin/$ARCH/$version"
	else
		rel="bin/$ARCH/$name"
	fi
	binary_seen[$name]=1
	install -m 0755 "$WORK/x-$release-$p/$inpath" "$PARTIAL/$rel"
	add_entry "$rel" "$ARCH" binary "$name" "$version" \
		"/$inpath from Debian $release's $p $debversion"
done

# The CNI plugins as one tar.gz with the plugin files at its root (hosts unpack it into
# /opt/cni/bin).
deb=$(deb_of bookworm "$CNI_PACKAGE")
debversion=$(dpkg-deb -f "$deb" Version)
dpkg-deb -x "$deb" "$WORK/x-cni"
mkdir -p "$WORK/cni"
for f in "$WORK/x-cni/$CNI_DIR"/*; do
	if [[ -f $f ]]; then install -m 0755 "$f" "$WORK/cni/"; fi
done
(cd "$WORK/cni" && find . -maxdepth 1 -type f -printf '%P\n' | LC_ALL=C sort) >"$WORK/cni.list"
[[ -s $WORK/cni.list ]] || die "$deb has no files in /$CNI_DIR"
cni_rel="cni/$ARCH/cni-plugins.tgz"
repack "$WORK/cni" "$WORK/cni.list" "$PARTIAL/$cni_rel"
add_entry "$cni_rel" "$ARCH" archive cni-plugins "$(upstream_version "$debversion")" \
	"/$CNI_DIR/* ($(wc -l <"$WORK/cni.list") plugins) from Debian's $CNI_PACKAGE $debversion"

# The rootfs: busybox and an sh link, owned by root and dated at the epoch so the tar (and its
# sha256) is the same on every build from the same package.
bbdeb=$(deb_of bookworm "$ROOTFS_PACKAGE")
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
# Moved aside, not deleted in place: a reader never sees a manifest whose files are going.
rm -rf "$OUT.old"
if [[ -e $OUT ]]; then mv "$OUT" "$OUT.old"; fi
mv "$PARTIAL" "$OUT"
rm -rf "$OUT.old"
echo "dev-bundle: wrote $OUT ($ARCH, ${#entries[@]} files)"
