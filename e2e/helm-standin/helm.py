# TEST STAND-IN for the helm CLI (https://helm.sh), which no registry this project builds from
# provides. Never shipped and never used by kubegrid itself: kubegrid's bundle tests
# (operator/bundle/tests/build/charts.rs) put it, behind a `#!<venv>/bin/python` line, into a
# fake helm release archive, to check how `kubegrid bundle build` runs the bundle's helm.
#
# Only the command line is stood in for. The rendering is Helm's own Go SDK, through
# helm-python-sdk from the validate virtualenv that .ci/setup makes (the one the chart tests
# use). It implements one command, with exactly the flags kubegrid passes:
#   helm template RELEASE CHART.tgz --namespace NS --include-crds --skip-tests --kube-version V
# and prints the chart's crds/ files, then its rendered templates (tests/ and NOTES.txt left
# out, sorted by path), each after a `# Source:` line as helm does.
import sys

import helm_python as helm


def fail(message):
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(1)


args = sys.argv[1:]
if len(args) < 3 or args[0] != "template":
    fail("stand-in helm: only `helm template RELEASE CHART [flags]` is implemented")
release, chart_path, flags = args[1], args[2], args[3:]
wanted = {"--namespace": None, "--kube-version": None}
switches = set()
i = 0
while i < len(flags):
    flag = flags[i]
    if flag in wanted and i + 1 < len(flags):
        wanted[flag] = flags[i + 1]
        i += 2
    elif flag in ("--include-crds", "--skip-tests"):
        switches.add(flag)
        i += 1
    else:
        fail(f"stand-in helm: unknown flag {flag}")
if None in wanted.values() or len(switches) != 2:
    fail("stand-in helm: expected --namespace, --include-crds, --skip-tests and --kube-version")

try:
    with helm.Chart.load(chart_path) as chart:
        docs = [(c["filename"], c["data"]) for c in chart.crds]
        rendered = chart.render(name=release, namespace=wanted["--namespace"], is_install=True)
        for path in sorted(rendered):
            if "/templates/tests/" in path or path.endswith("NOTES.txt"):
                continue
            docs.append((path, rendered[path]))
except helm.HelmError as e:
    fail(str(e))
for path, text in docs:
    if text.strip():
        print(f"---\n# Source: {path}\n{text.strip()}")
