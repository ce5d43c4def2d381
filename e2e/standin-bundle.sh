#!/usr/bin/env bash
# Builds the e2e bundle the lab tests install from: the development bundle
# (offline-bundle/dev-bundle.sh: containerd as release archives and debs, runc, busybox
# rootfs, real etcd/etcdctl, CNI plugins, runsc and crun debs) plus TEST STAND-INS for kubeadm,
# kubelet, kubectl and crictl, and one for Kata's archive (never unpacked on lab hosts); Debian
# bookworm non-free's NVIDIA driver packages (real, branch 535) and TEST STAND-INS for NVIDIA's
# container toolkit debs (no registry here serves them; the GPU e2e test stops at the driver's
# DKMS build, before they would be installed). No registry here provides Kubernetes 1.3x
# binaries, so those four are one binary, kubegrid-standin (e2e/src/bin/kubegrid-standin),
# which records how it is invoked and validates its input. It is never upstream Kubernetes and
# never part of a product bundle.
#
# Usage: e2e/standin-bundle.sh [OUTDIR] [K8S_VERSION]
#   OUTDIR       default /var/cache/kubegrid/bundle-e2e
#   K8S_VERSION  the version the primary stand-ins claim, vMAJOR.MINOR.PATCH (default v1.31.4),
#                at standin/ARCH/{kubeadm,kubelet,kubectl,crictl}; the manifest lists it
#                without the v
#   Stand-ins for the other versions of STANDIN_VERSIONS (v1.31.4, v1.32.4, v1.33.4: three
#   minors, for the upgrade tests) lie at standin/ARCH/vX.Y.Z/NAME, each entry with its
#   version; kubegrid picks the spec's version when a bundle has several.
#   DEV_BUNDLE   (env) the development bundle to start from, built there first when needed
#                (default /var/cache/kubegrid/bundle-dev)
#   The stand-in is built with `cargo build --release` (CARGO_TARGET_DIR is honoured) for this
#   machine's arch only.
#   NVIDIA_DEBS  (env) where the NVIDIA driver .debs are kept between runs (default
#                /var/cache/kubegrid/nvidia-debs); APT_DIR (env) as for offline-bundle/dev-bundle.sh
#
# Idempotent: each version's binary is kept under TARGET_DIR/kubegrid-standin-versions keyed
# by the hash of the stand-in's sources and the lock file (cargo would rebuild it every time the
# version changes, so it is built only when that key is new), and when
# OUTDIR/manifest.yaml is exactly what this run would write and every file verifies, OUTDIR is
# left alone. Otherwise the bundle is built in OUTDIR.partial (files hard-linked from the
# development bundle where possible) and renamed over OUTDIR at the end.
set -euo pipefail

STANDINS=(kubeadm kubelet kubectl crictl)
STANDIN_VERSIONS=(v1.31.4 v1.32.4 v1.33.4)

die() {
	echo "standin-bundle: $*" >&2
	exit 1
}

[[ $# -le 2 ]] || die "usage: $0 [OUTDIR] [K8S_VERSION]"
OUT=${1:-/var/cache/kubegrid/bundle-e2e}
OUT=${OUT%/}
K8S_VERSION=${2:-v1.31.4}
DEV=${DEV_BUNDLE:-/var/cache/kubegrid/bundle-dev}
# Building the e2e bundle over the dev bundle would stack stand-in entries into it run
# after run; refuse (e.g. an old KUBEGRID_BUNDLE still naming the dev bundle).
[[ $(realpath -m "$OUT") != $(realpath -m "$DEV") ]] ||
	die "OUT ($OUT) is the dev bundle; give the e2e bundle its own directory (default /var/cache/kubegrid/bundle-e2e)"
[[ $K8S_VERSION =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "K8S_VERSION '$K8S_VERSION' is not like v1.31.4"
REPO=$(cd "$(dirname "$0")/.." && pwd)
for tool in cargo dpkg dpkg-deb apt-get apt-cache sha256sum stat awk cmp; do
	command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
ARCH=$(dpkg --print-architecture)

# Prints "path sha256 size" for each file entry of a manifest written one key per line.
manifest_entries() {
	awk '
		/^  - path: / { path = $3 }
		/^    sha256: / { sha = $2 }
		/^    size: / { print path, sha, $2 }
	' "$1"
}

# Succeeds when every file the manifest in $1 lists has its size and sha256.
files_ok() {
	local dir=$1 path sha size n=0
	[[ -f $dir/manifest.yaml ]] || return 1
	while read -r path sha size; do
		[[ -f $dir/$path ]] || return 1
		[[ $(stat -c %s "$dir/$path") == "$size" ]] || return 1
		[[ $(sha256sum "$dir/$path" | cut -d' ' -f1) == "$sha" ]] || return 1
		n=$((n + 1))
	done < <(manifest_entries "$dir/manifest.yaml")
	[[ $n -gt 0 ]]
}

"$REPO/offline-bundle/dev-bundle.sh" "$DEV" "$ARCH"

TARGET_DIR=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps |
	sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n $TARGET_DIR ]] || die "cargo metadata names no target directory"
# The key of a build: the stand-in's sources, its crate manifest and the lock file.
SRC_KEY=$(cd "$REPO" && find e2e/src/bin/kubegrid-standin e2e/Cargo.toml Cargo.toml Cargo.lock -type f -print0 |
	LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
CACHE=$TARGET_DIR/kubegrid-standin-versions

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Prints the path of the stand-in binary claiming version $1, building it when this source key
# has none yet. Each build overwrites release/kubegrid-standin, so the result is copied out.
standin_for() {
	local version=$1 dir claimed
	dir=$CACHE/$version-$SRC_KEY
	if [[ ! -x $dir/kubegrid-standin ]]; then
		echo "standin-bundle: building kubegrid-standin ($version)" >&2
		(cd "$REPO" && KUBEGRID_STANDIN_K8S_VERSION=$version \
			cargo build --release --quiet -p kubegrid-e2e --bin kubegrid-standin) >&2 ||
			die "cargo build of kubegrid-standin ($version) failed"
		[[ -x $TARGET_DIR/release/kubegrid-standin ]] || die "no stand-in binary at $TARGET_DIR/release/kubegrid-standin after cargo build"
		rm -rf "$CACHE/$version"-*
		mkdir -p "$dir.tmp"
		cp "$TARGET_DIR/release/kubegrid-standin" "$dir.tmp/kubegrid-standin"
		mv "$dir.tmp" "$dir"
	fi
	# A stale binary from another version would pass every checksum, so check what it claims;
	# its invocation log goes under WORK, not into this machine's /var/log.
	claimed=$(KUBEGRID_STANDIN_ROOT=$WORK/root "$dir/kubegrid-standin" kubeadm version -o short 2>/dev/null) || true
	[[ $claimed == "$version" ]] || die "$dir/kubegrid-standin claims '$claimed', expected $version"
	echo "$dir/kubegrid-standin"
}

STANDIN=$(standin_for "$K8S_VERSION")
EXTRA=()
for v in "${STANDIN_VERSIONS[@]}"; do
	[[ $v == "$K8S_VERSION" ]] || EXTRA+=("$v")
done
declare -A EXTRA_BIN=()
for v in "${EXTRA[@]}"; do
	EXTRA_BIN[$v]=$(standin_for "$v")
done

# A TEST STAND-IN for Kata Containers' static release archive (no registry here serves it): a
# tar.gz whose only file, opt/kata/KUBEGRID-TEST-STANDIN, says what it is. Lab hosts cannot
# create a VM, so kubegrid never unpacks it there (kata goes only where /dev/kvm works); it is
# in the bundle so an apply listing a kata runtime passes the up-front bundle check and
# reaches preflight's kata-vm check. Same bytes on every build (sorted, root, time zero).
mkdir -p "$WORK/kata/opt/kata"
echo "TEST STAND-IN for kata-static (e2e/standin-bundle.sh), not Kata Containers." \
	>"$WORK/kata/opt/kata/KUBEGRID-TEST-STANDIN"
chmod 0755 "$WORK/kata" "$WORK/kata/opt" "$WORK/kata/opt/kata"
chmod 0644 "$WORK/kata/opt/kata/KUBEGRID-TEST-STANDIN"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
	-cf - -C "$WORK/kata" opt | gzip -n -9 >"$WORK/kata-standin.tar.gz"
KATA_SHA=$(sha256sum "$WORK/kata-standin.tar.gz" | cut -d' ' -f1)
KATA_SIZE=$(stat -c %s "$WORK/kata-standin.tar.gz")

# Debian bookworm non-free's (and contrib's) NVIDIA driver packages, branch 535: the names the
# install playbook's gpu-driver phase installs (playbooks/install.yaml), each at the version
# Debian's index has now. Real packages: the GPU e2e test installs them on a lab host, and their DKMS
# module build fails there (lab hosts have no kernel headers to build against and cannot load
# modules). Kept in NVIDIA_DEBS between runs; only versions not there yet are downloaded.
NVIDIA_PACKAGES=(update-glx glx-alternative-mesa glx-diversions glx-alternative-nvidia
	nvidia-installer-cleanup nvidia-support nvidia-kernel-common nvidia-alternative
	libnvidia-ptxjitcompiler1 libnvidia-pkcs11-openssl3 libcuda1 firmware-nvidia-gsp
	nvidia-modprobe nvidia-kernel-support nvidia-kernel-dkms libnvidia-cfg1 nvidia-persistenced
	libnvidia-ml1 nvidia-smi nvidia-legacy-check)
NVIDIA_DEBS=${NVIDIA_DEBS:-/var/cache/kubegrid/nvidia-debs}
APT_DIR=${APT_DIR:-/var/cache/kubegrid/apt}
# shellcheck source=offline-bundle/debian-apt.sh
. "$REPO/offline-bundle/debian-apt.sh"
MIRROR=$(debian_mirror)
[[ -n $MIRROR ]] || die "no apt source in /etc/apt/sources.list* serves this machine's release; cannot tell which Debian mirror to use"
apt_release_update bookworm "$MIRROR" "$WORK/update-bookworm.log" "main contrib non-free non-free-firmware"
mkdir -p "$NVIDIA_DEBS"
# apt-get download writes into the current directory as _apt.
mkdir -p "$WORK/nvidia-dl" && chmod 0755 "$WORK" && chmod 0777 "$WORK/nvidia-dl"
NVIDIA_DRIVER_DEBS=()
nvidia_missing=()
for p in "${NVIDIA_PACKAGES[@]}"; do
	v=$(apt_cache_release bookworm policy "$p" | awk '$1 == "Candidate:" { print $2 }')
	[[ -n $v && $v != "(none)" ]] || die "Debian bookworm (non-free) has no package $p for $ARCH"
	found=("$NVIDIA_DEBS/${p}_${v//:/%3a}_"*.deb)
	if [[ -f ${found[0]} ]]; then
		NVIDIA_DRIVER_DEBS+=("${found[0]}")
	else
		nvidia_missing+=("$p=$v")
	fi
done
if [[ ${#nvidia_missing[@]} -gt 0 ]]; then
	echo "standin-bundle: downloading ${#nvidia_missing[@]} NVIDIA driver packages from Debian bookworm non-free" >&2
	(cd "$WORK/nvidia-dl" && apt_release bookworm download "${nvidia_missing[@]}") >&2 ||
		die "apt-get download ${nvidia_missing[*]} from Debian bookworm non-free failed (its apt state: $APT_DIR/bookworm)"
	for deb in "$WORK/nvidia-dl"/*.deb; do
		[[ $(dpkg-deb -f "$deb" Architecture) =~ ^($ARCH|all)$ ]] || die "$deb is not for $ARCH"
		mv "$deb" "$NVIDIA_DEBS/"
		NVIDIA_DRIVER_DEBS+=("$NVIDIA_DEBS/${deb##*/}")
	done
fi
[[ ${#NVIDIA_DRIVER_DEBS[@]} -eq ${#NVIDIA_PACKAGES[@]} ]] ||
	die "expected ${#NVIDIA_PACKAGES[@]} NVIDIA driver .debs, have ${#NVIDIA_DRIVER_DEBS[@]}: ${NVIDIA_DRIVER_DEBS[*]}"
mapfile -t NVIDIA_DRIVER_DEBS < <(printf '%s\n' "${NVIDIA_DRIVER_DEBS[@]}" | LC_ALL=C sort)

# TEST STAND-INS for NVIDIA's container toolkit debs (its repository is not reachable here):
# empty packages under its four names and version 0.0.0-standin, each holding only
# usr/share/doc/NAME/KUBEGRID-TEST-STANDIN. They let an apply with spec.gpu pass the bundle's
# up-front pins; the GPU e2e test stops before the toolkit phase, so no lab host installs them.
# Same bytes on every build (files dated at the epoch, SOURCE_DATE_EPOCH for dpkg-deb).
TOOLKIT_STANDIN_DEBS=()
for p in nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1; do
	root=$WORK/toolkit/$p
	mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$p"
	echo "TEST STAND-IN for $p (e2e/standin-bundle.sh), not NVIDIA's package." \
		>"$root/usr/share/doc/$p/KUBEGRID-TEST-STANDIN"
	cat >"$root/DEBIAN/control" <<-CONTROL
		Package: $p
		Version: 0.0.0-standin
		Architecture: $ARCH
		Maintainer: kubegrid e2e <e2e@kubegrid.invalid>
		Description: TEST STAND-IN for $p (kubegrid e2e only)
		 An empty package under the name of NVIDIA's; never a product artifact.
	CONTROL
	find "$root" -type d -exec chmod 0755 {} + && find "$root" -type f -exec chmod 0644 {} +
	find "$root" -exec touch -h -d @0 {} +
	SOURCE_DATE_EPOCH=0 dpkg-deb --root-owner-group -Zgzip --build "$root" \
		"$WORK/toolkit/${p}_0.0.0-standin_$ARCH.deb" >/dev/null ||
		die "dpkg-deb could not build the $p stand-in"
	TOOLKIT_STANDIN_DEBS+=("$WORK/toolkit/${p}_0.0.0-standin_$ARCH.deb")
done

# Prints the manifest entry of .deb $1 at directory $2 of the bundle, of component $3.
deb_entry() {
	local deb=$1 dir=$2 component=$3
	cat <<-ENTRY
		  - path: $dir/${deb##*/}
		    sha256: $(sha256sum "$deb" | cut -d' ' -f1)
		    size: $(stat -c %s "$deb")
		    arch: $(dpkg-deb -f "$deb" Architecture)
		    kind: deb
		    name: $(dpkg-deb -f "$deb" Package)
		    version: "$(dpkg-deb -f "$deb" Version)"
		    component: $component
	ENTRY
}

# Prints the four manifest entries of the stand-in binary $1 at directory $2, claiming $3.
standin_entries() {
	local bin=$1 dir=$2 version=$3 sha size name
	sha=$(sha256sum "$bin" | cut -d' ' -f1)
	size=$(stat -c %s "$bin")
	for name in "${STANDINS[@]}"; do
		cat <<-EOF
			  - path: $dir/$name
			    sha256: $sha
			    size: $size
			    arch: $ARCH
			    kind: binary
			    name: $name
			    version: "${version#v}"
		EOF
	done
}

# The manifest this run writes: the development bundle's entries verbatim, then the stand-ins.
{
	echo "# kubegrid offline bundle manifest; format: offline-bundle/README.md"
	echo "# E2E bundle for the lab tests (e2e/standin-bundle.sh): NOT a product bundle."
	# Version 2 for the `component` keys of the NVIDIA entries (the engine pins the driver
	# and toolkit releases by component).
	echo "version: 2"
	echo "name: e2e-$ARCH-$K8S_VERSION"
	echo "files:"
	sed -n '/^files:$/,$p' "$DEV/manifest.yaml" | tail -n +2
	echo "  # TEST STAND-INS, not upstream Kubernetes: the four entries below are one binary,"
	echo "  # kubegrid-standin (e2e/src/bin/kubegrid-standin), which records each invocation in"
	echo "  # /var/log/kubegrid-standins/invocations.jsonl and validates its input; it runs no"
	echo "  # control plane. Built by e2e/standin-bundle.sh claiming Kubernetes $K8S_VERSION."
	standin_entries "$STANDIN" "standin/$ARCH" "$K8S_VERSION"
	for v in "${EXTRA[@]}"; do
		echo "  # The same stand-in claiming Kubernetes $v, for the upgrade tests."
		standin_entries "${EXTRA_BIN[$v]}" "standin/$ARCH/$v" "$v"
	done
	echo "  # TEST STAND-IN, not Kata Containers: a tar.gz of opt/kata/KUBEGRID-TEST-STANDIN only."
	cat <<-EOF
		  - path: standin/$ARCH/kata-standin.tar.gz
		    sha256: $KATA_SHA
		    size: $KATA_SIZE
		    arch: $ARCH
		    kind: archive
		    name: kata
		    version: "0.0.0-standin"
	EOF
	echo "  # Debian bookworm non-free's NVIDIA driver packages (branch 535), as Debian ships them."
	for deb in "${NVIDIA_DRIVER_DEBS[@]}"; do deb_entry "$deb" "nvidia/$ARCH" nvidia-driver; done
	echo "  # TEST STAND-INS, not NVIDIA's container toolkit: empty packages under its names."
	for deb in "${TOOLKIT_STANDIN_DEBS[@]}"; do deb_entry "$deb" "standin/$ARCH" nvidia-container-toolkit; done
} >"$WORK/manifest.yaml"

if [[ -f $OUT/manifest.yaml ]] && cmp -s "$WORK/manifest.yaml" "$OUT/manifest.yaml" && files_ok "$OUT"; then
	echo "standin-bundle: $OUT is up to date ($ARCH, $K8S_VERSION)"
	exit 0
fi

# OUTDIR is replaced wholesale at the end, so refuse a directory that is not a bundle.
if [[ -e $OUT && ! -f $OUT/manifest.yaml ]] && [[ -n $(ls -A "$OUT" 2>/dev/null) || ! -d $OUT ]]; then
	die "$OUT exists and is not a bundle (no manifest.yaml); refusing to replace it"
fi

PARTIAL=$OUT.partial
rm -rf "$PARTIAL"
mkdir -p "$PARTIAL"
# Hard links share the development bundle's bytes; neither builder ever rewrites a file in
# place (both replace whole directories), so a link never changes under a manifest.
while read -r path _ _; do
	mkdir -p "$(dirname "$PARTIAL/$path")"
	ln "$DEV/$path" "$PARTIAL/$path" 2>/dev/null || cp "$DEV/$path" "$PARTIAL/$path"
done < <(manifest_entries "$DEV/manifest.yaml")
# One copy per version, hard-linked under the four names.
install_standin() {
	local bin=$1 dir=$PARTIAL/$2 name
	mkdir -p "$dir"
	install -m 0755 "$bin" "$dir/${STANDINS[0]}"
	for name in "${STANDINS[@]:1}"; do
		ln "$dir/${STANDINS[0]}" "$dir/$name"
	done
}
install_standin "$STANDIN" "standin/$ARCH"
for v in "${EXTRA[@]}"; do
	install_standin "${EXTRA_BIN[$v]}" "standin/$ARCH/$v"
done
mkdir -p "$PARTIAL/standin/$ARCH"
cp "$WORK/kata-standin.tar.gz" "$PARTIAL/standin/$ARCH/kata-standin.tar.gz"
mkdir -p "$PARTIAL/nvidia/$ARCH"
for deb in "${NVIDIA_DRIVER_DEBS[@]}"; do
	ln "$deb" "$PARTIAL/nvidia/$ARCH/" 2>/dev/null || cp "$deb" "$PARTIAL/nvidia/$ARCH/"
done
cp "${TOOLKIT_STANDIN_DEBS[@]}" "$PARTIAL/standin/$ARCH/"
cp "$WORK/manifest.yaml" "$PARTIAL/manifest.yaml"

files_ok "$PARTIAL" || die "the bundle just built in $PARTIAL does not verify"
# Moved aside, not deleted in place: a reader never sees a manifest whose files are going.
rm -rf "$OUT.old"
if [[ -e $OUT ]]; then mv "$OUT" "$OUT.old"; fi
mv "$PARTIAL" "$OUT"
rm -rf "$OUT.old"
echo "standin-bundle: wrote $OUT ($ARCH, $K8S_VERSION and ${EXTRA[*]}, $(manifest_entries "$OUT/manifest.yaml" | wc -l) files)"
