//! The chart rendered with one set of values, through `charts/kubegrid/tests/check_chart.py`
//! in the validate virtualenv, and the checks every rendering must pass: hardened pod, exact
//! RBAC, lint and strict schema validation.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::{Value, json};

/// Where .ci/setup creates the virtualenv; KUBEGRID_VALIDATE_VENV overrides it.
const DEFAULT_VENV: &str = "/var/cache/kubegrid/validate-venv";
/// The Kubernetes version whose API schemas the objects are validated against.
const KUBERNETES_VERSION: &str = "1.31.4";
/// The release namespace every rendering uses.
pub const NAMESPACE: &str = "kubegrid-system";

/// The operator's rules (apiGroup, resources, verbs), as README.md's RBAC table lists them.
const OPERATOR_RULES: &[(&str, &str, &str)] = &[
    (
        "kubegrid.io",
        "clusters nodes",
        "get list watch patch update",
    ),
    (
        "kubegrid.io",
        "clusters/status nodes/status",
        "get patch update",
    ),
    (
        "kubegrid.io",
        "clusters/finalizers nodes/finalizers",
        "update",
    ),
    ("", "secrets", "get create patch update"),
    ("", "configmaps", "get"),
    ("events.k8s.io", "events", "create patch"),
    ("", "events", "create patch"),
];
/// Leader election, in the release namespace only; `leases[x]` is a rule with resourceNames
/// [x], LEASE the `--lease-name` the Deployment passes.
const LEADER_RULES: &[(&str, &str, &str)] = &[
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases[LEASE]", "get update"),
];

/// Every (a, b, c) with a from `xs`, b from `ys` and c from `zs`.
fn iproduct<'a>(
    xs: &[&'a str],
    ys: &[&'a str],
    zs: &[&'a str],
) -> Vec<(&'a str, &'a str, &'a str)> {
    let pairs = xs.iter().flat_map(|x| ys.iter().map(move |y| (*x, *y)));
    pairs
        .flat_map(|(x, y)| zs.iter().map(move |z| (x, y, *z)))
        .collect()
}

/// The chart's folder in this checkout.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/kubegrid")
}

/// The virtualenv with helm-python-sdk and kubernetes-validate; panics (never skips) with a
/// hint when it is missing or incomplete.
fn venv() -> PathBuf {
    let venv = std::env::var_os("KUBEGRID_VALIDATE_VENV")
        .map_or_else(|| PathBuf::from(DEFAULT_VENV), PathBuf::from);
    let python = venv.join("bin/python");
    let imports = Command::new(&python)
        .args(["-c", "import helm_python, kubernetes_validate"])
        .output();
    match imports {
        Ok(out) if out.status.success() => venv,
        Ok(out) => panic!(
            "{} cannot import helm_python and kubernetes_validate: {}\nhint: run .ci/setup (as \
             root), which installs helm-python-sdk and kubernetes-validate there, or point \
             KUBEGRID_VALIDATE_VENV at a virtualenv that has both",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "no Python at {} ({e})\nhint: run .ci/setup (as root) to build the validate \
             virtualenv, or point KUBEGRID_VALIDATE_VENV at one with helm-python-sdk and \
             kubernetes-validate",
            python.display()
        ),
    }
}

/// One render of the chart: the helper's report and the folder holding the rendered files.
pub struct Render {
    /// The helper's JSON report (see check_chart.py).
    pub report: Value,
    dir: tempfile::TempDir,
}

impl Render {
    pub fn new(values: Value) -> Self {
        let venv = venv();
        let dir = tempfile::tempdir().expect("tempdir");
        let helper = chart_dir().join("tests/check_chart.py");
        let out = Command::new(venv.join("bin/python"))
            .arg(&helper)
            .args(["--chart".as_ref(), chart_dir().as_os_str()])
            .args(["--namespace", NAMESPACE])
            .args(["--kubernetes-version", KUBERNETES_VERSION])
            .args(["--values-json", &values.to_string()])
            .args(["--out-dir".as_ref(), dir.path().as_os_str()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", helper.display()));
        assert!(
            out.status.success(),
            "{} failed for values {values}: {}",
            helper.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{} printed no JSON report ({e})", helper.display());
        });
        Self { report, dir }
    }

    /// Renders `values`, requiring a clean render, a clean lint and every object valid.
    pub fn valid(values: Value) -> Self {
        let render = Self::new(values.clone());
        let r = &render.report;
        assert!(
            r["render_error"].is_null(),
            "values {values} do not render: {}",
            r["render_error"]
        );
        // Severity 2 is a warning, 3 an error; "icon is recommended" (1) is only advice.
        let findings: Vec<_> = r["lint"]["messages"]
            .as_array()
            .expect("lint messages")
            .iter()
            .filter(|m| m["severity"].as_i64() >= Some(2))
            .collect();
        assert!(findings.is_empty(), "helm lint for {values}: {findings:#?}");
        for o in render.objects() {
            assert_eq!(
                o["status"], "passed",
                "{} {} in {} fails validation with values {values}: {}",
                o["object"]["kind"], o["object"]["metadata"]["name"], o["template"], o["message"]
            );
        }
        render.assert_hardened();
        render.assert_rbac();
        render
    }

    pub fn objects(&self) -> &[Value] {
        self.report["objects"].as_array().expect("objects")
    }

    pub fn kinds(&self) -> BTreeSet<String> {
        self.objects()
            .iter()
            .map(|o| o["object"]["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects()
            .iter()
            .filter(|o| o["object"]["kind"] == kind)
            .map(|o| &o["object"])
            .collect()
    }

    pub fn one(&self, kind: &str) -> &Value {
        let all = self.all(kind);
        assert_eq!(all.len(), 1, "expected one {kind}, rendered {all:#?}");
        all[0]
    }

    pub fn deployment(&self) -> &Value {
        self.one("Deployment")
    }

    pub fn container(&self) -> &Value {
        &self.deployment()["spec"]["template"]["spec"]["containers"][0]
    }

    pub fn args(&self) -> Vec<&str> {
        let args = self.container()["args"].as_array().expect("args");
        args.iter().map(|a| a.as_str().unwrap()).collect()
    }

    pub fn volume(&self, name: &str) -> Option<&Value> {
        let volumes = self.deployment()["spec"]["template"]["spec"]["volumes"].as_array();
        volumes?.iter().find(|v| v["name"] == name)
    }

    pub fn mount(&self, name: &str) -> Option<&Value> {
        let mounts = self.container()["volumeMounts"].as_array()?;
        mounts.iter().find(|m| m["name"] == name)
    }

    /// Non-root, read-only root filesystem, no privilege escalation, every capability
    /// dropped, the runtime's seccomp profile, and requests and limits on every container.
    pub fn assert_hardened(&self) {
        let pod = &self.deployment()["spec"]["template"]["spec"];
        let psc = &pod["securityContext"];
        for (path, want) in [
            ("/runAsNonRoot", json!(true)),
            ("/runAsUser", json!(65532)),
            ("/seccompProfile/type", json!("RuntimeDefault")),
        ] {
            assert_eq!(
                psc.pointer(path),
                Some(&want),
                "pod securityContext{path}: {psc}"
            );
        }
        for key in ["hostNetwork", "hostPID", "hostIPC"] {
            assert!(pod[key].is_null() || pod[key] == false, "pod sets {key}");
        }
        for c in pod["containers"].as_array().expect("containers") {
            let sc = &c["securityContext"];
            for (path, want) in [
                ("/runAsNonRoot", json!(true)),
                ("/runAsUser", json!(65532)),
                ("/runAsGroup", json!(65532)),
                ("/readOnlyRootFilesystem", json!(true)),
                ("/allowPrivilegeEscalation", json!(false)),
                ("/capabilities", json!({"drop": ["ALL"]})),
                ("/seccompProfile/type", json!("RuntimeDefault")),
            ] {
                assert_eq!(sc.pointer(path), Some(&want), "{}{path}: {sc}", c["name"]);
            }
            for path in [
                "/requests/cpu",
                "/requests/memory",
                "/limits/cpu",
                "/limits/memory",
            ] {
                let set = c["resources"].pointer(path).is_some_and(Value::is_string);
                assert!(
                    set,
                    "{} has no resources{path}: {}",
                    c["name"], c["resources"]
                );
            }
        }
    }

    /// Every grant as "scope group resource verb" (scope: "cluster" or the Role's namespace;
    /// resource `leases[a]` when the rule has resourceNames [a]). Also checks that no rule has
    /// a wildcard or a non-resource URL, and that every binding names a rendered role and the
    /// operator's ServiceAccount.
    pub fn grants(&self) -> BTreeSet<String> {
        let mut grants = BTreeSet::new();
        for role in self.all("ClusterRole").into_iter().chain(self.all("Role")) {
            let scope = role["metadata"]["namespace"].as_str().unwrap_or("cluster");
            for rule in role["rules"].as_array().expect("rules") {
                let list = |k: &str| -> Vec<&str> {
                    let items = rule[k].as_array().unwrap_or_else(|| panic!("{k}: {rule}"));
                    items.iter().map(|v| v.as_str().unwrap()).collect()
                };
                assert!(!rule.to_string().contains('*'), "wildcard in {rule}");
                assert!(rule["nonResourceURLs"].is_null(), "{rule}");
                let names = match rule.get("resourceNames") {
                    Some(_) => format!("[{}]", list("resourceNames").join(",")),
                    None => String::new(),
                };
                for (g, r, v) in iproduct(&list("apiGroups"), &list("resources"), &list("verbs")) {
                    grants.insert(format!("{scope} {g} {r}{names} {v}"));
                }
            }
        }
        let sa = &self.one("ServiceAccount")["metadata"]["name"];
        let subject = json!([{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]);
        for (binding, role) in [
            ("ClusterRoleBinding", "ClusterRole"),
            ("RoleBinding", "Role"),
        ] {
            for b in self.all(binding) {
                let (meta, target) = (&b["metadata"], &b["roleRef"]["name"]);
                let found = self.all(role).iter().any(|r| {
                    r["metadata"]["name"] == *target
                        && r["metadata"]["namespace"] == meta["namespace"]
                });
                assert!(
                    found,
                    "{binding} {} names no rendered {role} {target}",
                    meta["name"]
                );
                assert_eq!(b["subjects"], subject, "{binding} {}", meta["name"]);
            }
        }
        grants
    }

    /// Exactly OPERATOR_RULES where the operator watches ("cluster", or the watchNamespace)
    /// and LEADER_RULES in the release namespace: nothing else.
    pub fn assert_rbac(&self) {
        let arg = |flag: &str| self.args().iter().find_map(|a| a.strip_prefix(flag));
        let (watch, lease) = (
            arg("--namespace="),
            arg("--lease-name=").expect("--lease-name"),
        );
        let mut expected = BTreeSet::new();
        for (scope, rules) in [
            (watch.unwrap_or("cluster"), OPERATOR_RULES),
            (NAMESPACE, LEADER_RULES),
        ] {
            for (group, resources, verbs) in rules {
                let resources: Vec<&str> = resources.split(' ').collect();
                let verbs: Vec<&str> = verbs.split(' ').collect();
                for (g, r, v) in iproduct(&[*group], &resources, &verbs) {
                    expected.insert(format!("{scope} {g} {} {v}", r.replace("LEASE", lease)));
                }
            }
        }
        let got = self.grants();
        let extra: Vec<_> = got.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&got).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "RBAC differs from README.md's table; granted beyond it: {extra:?}; missing: \
             {missing:?}"
        );
    }

    /// Runs the kubernetes-validate CLI, strict, on every rendered file; returns its stdout.
    pub fn validate_with_cli(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("rendered files")
            .map(|e| e.expect("dir entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "nothing rendered to validate");
        let out = Command::new(venv().join("bin/kubernetes-validate"))
            .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
            .args(&files)
            .output()
            .expect("run kubernetes-validate");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && !stdout.contains("ERROR"),
            "kubernetes-validate --strict: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}
