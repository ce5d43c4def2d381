#!/usr/bin/env bash
# Builds the REAL Kubernetes API server that kubegrid's tests apply their CRDs to, from
# Debian's packages, and caches it. TEST BED ONLY: nothing here is shipped or used by the
# product.
#
# What it downloads (from this machine's Debian mirror, Debian sid, about 290 MB of .debs):
#   - golang-k8s-apiextensions-apiserver-dev, Kubernetes' own Go sources for the
#     apiextensions-apiserver, and its dependency closure (about 315 golang-*-dev packages,
#     all arch-independent source);
#   - golang-1.27-go and golang-1.27-src, the Go toolchain that builds them;
#   - etcd-server (etcd 3.5), the store the API server runs on;
#   - kubectl (1.36), for the tests that check what `kubectl get` shows.
# No registry here serves a kube-apiserver binary; Debian serves its sources, so the tests get
# a real API server (CRDs, CEL with the real cost limits, defaulting, pruning, status and
# scale subresources, watches, finalizers, server-side apply) instead of a stand-in.
#
# How: `apt-get download` with a sources list, state and cache of its own under APT_DIR/sid
# (offline-bundle/debian-apt.sh; the machine's apt configuration is never read nor written),
# `dpkg -x` into a scratch folder (nothing is installed into the system), then `go build` in
# GOPATH mode, offline (GO111MODULE=off GOPROXY=off CGO_ENABLED=0), of discovery/main.go: the
# stock server's main with discovery at /apis turned on.
#
# Usage: e2e/real-apiserver/build.sh [CACHE]   (CACHE defaults to /var/cache/kubegrid/apiserver)
# Result: CACHE/current/{apiextensions-apiserver,etcd,kubectl,versions.txt}.
#
# Idempotent: the cache key is the versions of every package above plus this script and
# main.go; when CACHE/<key> exists the script only points CACHE/current at it. When the
# mirror cannot be reached but a complete earlier build exists, that build is kept and used.
# A build happens in a scratch folder and is renamed into place only when complete.
set -euo pipefail

ROOT_PACKAGE=golang-k8s-apiextensions-apiserver-dev
TOOL_PACKAGES=(golang-1.27-go golang-1.27-src etcd-server kubectl)
GOROOT_IN_PACKAGE=usr/lib/go-1.27
GOPATH_IN_PACKAGE=usr/share/gocode
RELEASE=sid
APT_DIR=${APT_DIR:-/var/cache/kubegrid/apt}
ARCH=$(dpkg --print-architecture)
CACHE=${1:-/var/cache/kubegrid/apiserver}
CACHE=${CACHE%/}
HERE=$(cd "$(dirname "$0")" && pwd)

die() {
	echo "real-apiserver build: $*" >&2
	exit 1
}

# shellcheck source=offline-bundle/debian-apt.sh
. "$HERE/../../offline-bundle/debian-apt.sh"

for tool in apt-get apt-cache dpkg-deb sha256sum awk; do
	command -v "$tool" >/dev/null || die "needs $tool; hint: run it on Debian (apt, dpkg)"
done
mkdir -p "$CACHE"

# A build is complete when its three programs and versions.txt are there.
complete() {
	[[ -x $1/apiextensions-apiserver && -x $1/etcd && -x $1/kubectl && -s $1/versions.txt ]]
}

WORK=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# apt-get download writes as the _apt user into the current directory.
chmod 0755 "$WORK"

MIRROR=$(debian_mirror)
[[ -n $MIRROR ]] || die "no apt source in /etc/apt/sources.list* serves this machine's release; cannot tell which Debian mirror to use"
if ! (apt_release_update "$RELEASE" "$MIRROR" "$WORK/update.log"); then
	if complete "$CACHE/current"; then
		echo "real-apiserver build: Debian $RELEASE unreachable; keeping the cached build $(readlink "$CACHE/current")" >&2
		exit 0
	fi
	die "cannot update Debian $RELEASE's index and no cached build exists (see above)"
fi

# The source packages the server needs: the closure of the root package's dependencies,
# keeping only Go source packages (golang-*-dev). Other dependencies (libc, pkgconf, protoc)
# serve cgo and code generation, which an offline CGO_ENABLED=0 build does not use.
apt_cache_release "$RELEASE" depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances "$ROOT_PACKAGE" >"$WORK/depends.txt" ||
	die "apt-cache depends $ROOT_PACKAGE failed in Debian $RELEASE"
mapfile -t SOURCES < <(grep -E '^golang-[a-z0-9.+-]*-dev$' "$WORK/depends.txt" | sort -u)
[[ ${#SOURCES[@]} -gt 100 ]] ||
	die "the dependency closure of $ROOT_PACKAGE has ${#SOURCES[@]} Go source packages; expected hundreds (does Debian $RELEASE still carry it?)"
PACKAGES=("${SOURCES[@]}" "${TOOL_PACKAGES[@]}")

# The versions apt would download now: "package version" per line, sorted.
apt_cache_release "$RELEASE" show --no-all-versions "${PACKAGES[@]}" 2>"$WORK/show.err" |
	awk '/^Package: /{p=$2} /^Version: /{print p, $2}' | sort -u >"$WORK/versions.txt"
[[ $(wc -l <"$WORK/versions.txt") -eq ${#PACKAGES[@]} ]] ||
	die "Debian $RELEASE lacks some of the ${#PACKAGES[@]} packages: $(head -n 3 "$WORK/show.err")"
KEY=$(cat "$WORK/versions.txt" "$HERE/discovery/main.go" "$0" | sha256sum | cut -c1-16)

if complete "$CACHE/$KEY"; then
	ln -sfn "$KEY" "$CACHE/current.new" && mv -T "$CACHE/current.new" "$CACHE/current"
	echo "real-apiserver build: cached ($CACHE/$KEY)"
	exit 0
fi

echo "real-apiserver build: downloading ${#PACKAGES[@]} packages from Debian $RELEASE"
mkdir -p "$WORK/debs" "$WORK/root" "$WORK/out"
chmod 0777 "$WORK/debs"
(cd "$WORK/debs" && apt_release "$RELEASE" download "${PACKAGES[@]}" >"$WORK/download.log" 2>&1) ||
	die "apt-get download from Debian $RELEASE failed: $(tail -n 3 "$WORK/download.log")"
# apt-get download checks every .deb against the signed index; check it fetched exactly the
# versions the key was made from.
for deb in "$WORK"/debs/*.deb; do
	dpkg-deb -f "$deb" Package Version | awk 'NR==1{p=$2} NR==2{print p, $2}'
done | sort -u >"$WORK/fetched.txt"
cmp -s "$WORK/versions.txt" "$WORK/fetched.txt" ||
	die "apt-get download fetched other versions than planned: $(diff "$WORK/versions.txt" "$WORK/fetched.txt" | head -n 4)"
for deb in "$WORK"/debs/*.deb; do
	dpkg -x "$deb" "$WORK/root"
done

# GOPATH mode: the packages lay their sources out as a GOPATH; the wrapper main goes beside.
GOPATH=$WORK/root/$GOPATH_IN_PACKAGE
mkdir -p "$GOPATH/src/kubegrid.io/apiextensions-apiserver"
cp "$HERE/discovery/main.go" "$GOPATH/src/kubegrid.io/apiextensions-apiserver/main.go"
echo "real-apiserver build: go build (a few minutes; the Go build cache $CACHE/gocache makes a rebuild quick)"
start=$(date +%s)
env -i PATH=/usr/bin:/bin HOME="$WORK" GOROOT="$WORK/root/$GOROOT_IN_PACKAGE" GOPATH="$GOPATH" \
	GO111MODULE=off GOPROXY=off GOFLAGS= GOTOOLCHAIN=local CGO_ENABLED=0 GOCACHE="$CACHE/gocache" \
	"$WORK/root/$GOROOT_IN_PACKAGE/bin/go" build -trimpath -ldflags='-s -w' \
	-o "$WORK/out/apiextensions-apiserver" kubegrid.io/apiextensions-apiserver >"$WORK/build.log" 2>&1 ||
	die "go build failed: $(tail -n 5 "$WORK/build.log")"
echo "real-apiserver build: built in $(($(date +%s) - start)) s"
cp "$WORK/root/usr/bin/etcd" "$WORK/root/usr/bin/kubectl" "$WORK/out/"
cp "$WORK/versions.txt" "$WORK/out/versions.txt"
# Each program must start on this machine (sid's etcd and kubectl link this machine's glibc).
"$WORK/out/apiextensions-apiserver" --help >/dev/null 2>&1 || die "the built apiextensions-apiserver does not start"
"$WORK/out/etcd" --version >/dev/null 2>&1 || die "sid's etcd does not start on this machine: $("$WORK/out/etcd" --version 2>&1 | head -n 2)"
"$WORK/out/kubectl" version --client >/dev/null 2>&1 || die "sid's kubectl does not start on this machine: $("$WORK/out/kubectl" version --client 2>&1 | head -n 2)"

rm -rf "${CACHE:?}/$KEY"
mv "$WORK/out" "$CACHE/$KEY"
ln -sfn "$KEY" "$CACHE/current.new" && mv -T "$CACHE/current.new" "$CACHE/current"
# Older builds are superseded; the Go build cache stays.
for old in "$CACHE"/*/; do
	old=$(basename "$old")
	[[ $old == "$KEY" || $old == gocache || $old == current ]] || rm -rf "${CACHE:?}/$old"
done
complete "$CACHE/current" || die "$CACHE/current does not hold the build after the rename"
echo "real-apiserver build: $CACHE/$KEY ($(du -sh "$CACHE/$KEY" | cut -f1))"
