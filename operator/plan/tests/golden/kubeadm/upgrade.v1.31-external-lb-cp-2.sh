#!/bin/sh
# Written by kubegrid for cluster gpu-lab: kubeadm's upgrade to v1.31.4 on cp-2.
# `apply` (the first control-plane Node) and `node` (the others, and workers) run kubeadm;
# `applied` and `noded` exit 0 when that step is already done here, so a re-run skips it.
# Certificates are not renewed by kubeadm: kubegrid issues and keeps them (its journal is
# the one record of every certificate and its expiry).
set -eu
want=v1.31.4
manifest=/etc/kubernetes/manifests/kube-apiserver.yaml
marker=/etc/kubernetes/kubegrid/upgrade-node.version
running() {
	sed -n 's|^[[:space:]-]*image:[[:space:]]*"\{0,1\}[^[:space:]"]*/kube-apiserver:\(v[^[:space:]"]*\).*|\1|p' "$manifest" 2>/dev/null | head -n 1
}
case "${1:-}" in
applied) [ "$(running)" = "$want" ] ;;
apply) kubeadm upgrade apply "$want" --yes --certificate-renewal=false ;;
noded)
	if [ -e "$manifest" ]; then
		[ "$(running)" = "$want" ]
	else
		[ "$(cat "$marker" 2>/dev/null)" = "$want" ]
	fi
	;;
node)
	kubeadm upgrade node --certificate-renewal=false
	if [ ! -e "$manifest" ]; then
		mkdir -p "$(dirname "$marker")"
		echo "$want" >"$marker"
	fi
	;;
*)
	echo "usage: $0 apply|applied|node|noded" >&2
	exit 2
	;;
esac
