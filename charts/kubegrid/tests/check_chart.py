#!/usr/bin/env python3
"""Render the kubegrid chart with one set of values, lint it, and validate every object.

Run by e2e/tests/chart.rs with the interpreter of the validate virtualenv .ci/setup builds
(/var/cache/kubegrid/validate-venv: helm-python-sdk and kubernetes-validate). No cluster and
no network: helm-python-sdk renders and lints with Helm's own Go SDK in-process.

Prints one JSON object:

    {"render_error": null | {"type": ..., "message": ...},
     "lint": {"messages": [{"severity", "path", "error"}], "errors": [...]},
     "objects": [{"template", "file", "object", "status", "validator", "message"}],
     "crds": [ ...same fields... ]}

status is "passed", "failed" or "no-schema". validator says what checked the object:
"kubernetes-validate" (the API schemas of --kubernetes-version, strict: unknown fields
fail), or "servicemonitor-subset" for monitoring.coreos.com/v1 ServiceMonitor, which
kubernetes-validate has no schema for (it is a CRD of the Prometheus Operator): that object is
first offered to kubernetes-validate (recorded in "upstream_status") and then checked against
SERVICEMONITOR below, the fields the chart uses, copied from the Prometheus Operator's CRD.

Every rendered template that holds objects is also written to --out-dir (one file per
template) so the test can run the kubernetes-validate CLI on them.

Exit status: 0 when the report was printed (whatever it says), 2 on a usage or I/O error.
"""

import argparse
import json
import os
import sys

import helm_python as helm
import jsonschema
import yaml
from kubernetes_validate import utils

# Prometheus Operator v0.84.1, CRD servicemonitors.monitoring.coreos.com (v1), reduced to the
# fields this chart renders; additionalProperties=false so a field outside this list (or a
# misspelt one) fails instead of passing unchecked. Patterns and enums are the CRD's own.
_DURATION = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
    "(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_DNS_SUBDOMAIN = {
    "type": "string",
    "maxLength": 253,
    "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}
SERVICEMONITOR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": _DNS_SUBDOMAIN,
                "namespace": _DNS_SUBDOMAIN,
                "labels": _STRING_MAP,
                "annotations": _STRING_MAP,
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["endpoints", "selector"],
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _STRING_MAP},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                        },
                    },
                },
            },
        },
    },
}


def check(doc, version):
    """Validates one object; returns (status, validator, message, upstream_status)."""
    try:
        utils.validate(doc, version, strict=True)
        return "passed", "kubernetes-validate", "", None
    except utils.ValidationError as e:
        where = ".".join(str(p) for p in e.path) or "(document)"
        return "failed", "kubernetes-validate", f"{where}: {e.message}", None
    except utils.SchemaNotFoundError as e:
        upstream = "no-schema"
        if (doc.get("apiVersion"), doc.get("kind")) != ("monitoring.coreos.com/v1",
                                                         "ServiceMonitor"):
            return "no-schema", "kubernetes-validate", e.message, upstream
    errors = sorted(
        jsonschema.Draft7Validator(SERVICEMONITOR).iter_errors(doc), key=lambda e: list(e.path)
    )
    if errors:
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.path) or '(document)'}: {e.message}" for e in errors
        )
        return "failed", "servicemonitor-subset", message, upstream
    return "passed", "servicemonitor-subset", "", upstream


def entry(template, path, doc, version):
    status, validator, message, upstream = check(doc, version)
    return {
        "template": template,
        "file": path,
        "object": doc,
        "status": status,
        "validator": validator,
        "upstream_status": upstream,
        "message": message,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", required=True)
    parser.add_argument("--release", default="kubegrid")
    parser.add_argument("--namespace", default="kubegrid-system")
    parser.add_argument("--kubernetes-version", required=True)
    parser.add_argument("--values-json", default="{}")
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args()
    values = json.loads(args.values_json)
    version = args.kubernetes_version

    report = {"render_error": None, "lint": None, "objects": [], "crds": []}
    report["lint"] = helm.lint(
        args.chart,
        values,
        strict=True,
        namespace=args.namespace,
        kube_version=f"v{version}",
    )
    with helm.Chart.load(args.chart) as chart:
        try:
            rendered = chart.render(
                values=values, name=args.release, namespace=args.namespace, is_install=True
            )
        except helm.HelmError as e:
            report["render_error"] = {"type": type(e).__name__, "message": str(e)}
            rendered = {}
        for template, text in sorted(rendered.items()):
            if template.endswith("NOTES.txt"):
                continue
            docs = [d for d in yaml.safe_load_all(text) if d]
            if not docs:
                continue
            path = os.path.join(args.out_dir, template.replace("/", "_"))
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            report["objects"] += [entry(template, path, d, version) for d in docs]
        for crd in chart.crds:
            docs = [d for d in yaml.safe_load_all(crd["data"]) if d]
            report["crds"] += [entry(crd["filename"], crd["filename"], d, version) for d in docs]
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
