#!/usr/bin/env python3
"""Validate rendered Kubernetes manifests against the API schemas of one Kubernetes version.

Uses the schemas kubernetes-validate (PyPI) ships, strictly: a field the API does not know is
an error. Prints one JSON object per YAML document:

    {"file": ..., "index": N, "apiVersion": ..., "kind": ..., "name": ...,
     "status": "passed" | "failed" | "no-schema", "message": ...}

"no-schema" means kubernetes-validate has no schema for that apiVersion/kind: it covers API
resources only, so component configs (KubeletConfiguration, KubeProxyConfiguration, kubeadm's
types) are not validated by it.

Usage: validate_manifests.py --kubernetes-version 1.31.4 FILE...
Exit status: 0 when no document failed, 1 when one did, 2 when a file cannot be read or
parsed, or the version is unsupported.
"""

import argparse
import json
import sys

import yaml
from kubernetes_validate import utils


def documents(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def check(doc, version):
    try:
        utils.validate(doc, version, strict=True)
        return "passed", ""
    except utils.ValidationError as e:
        where = ".".join(str(p) for p in e.path) or "(document)"
        return "failed", f"{where}: {e.message}"
    except utils.SchemaNotFoundError as e:
        return "no-schema", e.message


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    failed = False
    for path in args.files:
        try:
            docs = documents(path)
        except (OSError, yaml.YAMLError) as e:
            print(f"cannot read {path}: {e}", file=sys.stderr)
            return 2
        for index, doc in enumerate(docs):
            try:
                status, message = check(doc, args.kubernetes_version)
            except utils.VersionNotSupportedError:
                print(
                    f"kubernetes-validate has no schemas for Kubernetes {args.kubernetes_version}",
                    file=sys.stderr,
                )
                return 2
            failed = failed or status == "failed"
            print(json.dumps({
                "file": path,
                "index": index,
                "apiVersion": doc.get("apiVersion"),
                "kind": doc.get("kind"),
                "name": (doc.get("metadata") or {}).get("name"),
                "status": status,
                "message": message,
            }))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
