//! Artifacts of kind `chart`: fetched once for every arch, verified by a pin under `all`, and
//! rendered at build time by the helm the release puts into the bundle. Here that helm is
//! e2e/helm-standin/helm.py, a TEST STAND-IN for the helm CLI (no registry here provides it)
//! whose `helm template` renders with Helm's own Go SDK (helm-python-sdk in the validate
//! virtualenv .ci/setup makes); what is checked is kubegrid's part: the helm it picks, the
//! flags, where the output goes, how the manifest lists it and how failures are reported.

use kubegrid_bundle::{Error, Sources};
use kubegrid_plan::{Arch, Bundle, FileKind, KedaContext};

use crate::{
    fixtures::{sha, tar_gz, unpacked},
    server::Server,
};

const STANDIN_HELM: &str = include_str!("../../../../e2e/helm-standin/helm.py");
/// Where .ci/setup creates the virtualenv with helm-python-sdk; KUBEGRID_VALIDATE_VENV
/// overrides it (as for the chart tests).
const DEFAULT_VENV: &str = "/var/cache/kubegrid/validate-venv";

/// The stand-in helm as an executable: the script behind the validate virtualenv's Python.
/// Panics (never skips) with a hint when that Python cannot import helm_python.
fn standin_helm() -> Vec<u8> {
    let venv = std::env::var("KUBEGRID_VALIDATE_VENV").unwrap_or_else(|_| DEFAULT_VENV.into());
    let python = format!("{venv}/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import helm_python"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import helm_python; hint: run .ci/setup (as root), which makes the \
         validate virtualenv, or point KUBEGRID_VALIDATE_VENV at one with helm-python-sdk"
    );
    format!("#!{python}\n{STANDIN_HELM}").into_bytes()
}
const CHART: &str = "/kedacore.github.io/charts/keda-2.0.0.tgz";

/// The machine's own arch: the build runs the helm bundled for it.
fn arch() -> Arch {
    match std::env::consts::ARCH {
        "aarch64" => Arch::Arm64,
        _ => Arch::Amd64,
    }
}

fn helm_archive() -> String {
    format!("/get.helm.sh/helm-v3.0.0-linux-{}.tar.gz", arch().as_str())
}

/// What the test chart's templates are.
#[derive(Clone, Copy)]
enum Templates {
    /// A Deployment built from the release, the namespace and the values.
    Deployment,
    /// None: helm renders nothing.
    None,
    /// One that does not parse: helm fails.
    Broken,
}

fn chart(templates: Templates) -> Vec<u8> {
    let deployment = b"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-operator
  namespace: {{ .Release.Namespace }}
spec:
  template:
    spec:
      containers:
        - name: operator
          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}\"
";
    let crd = b"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: scaledobjects.keda.sh}
";
    let mut entries: Vec<(&str, &[u8], u32)> = vec![
        (
            "keda/Chart.yaml",
            b"apiVersion: v2\nname: keda\nversion: 2.0.0\nappVersion: 2.0.0\n",
            0o644,
        ),
        (
            "keda/values.yaml",
            b"image: {repository: ghcr.io/kedacore/keda, tag: \"\"}\n",
            0o644,
        ),
    ];
    match templates {
        Templates::Deployment => {
            entries.push(("keda/crds/scaledobjects.yaml", crd, 0o644));
            entries.push(("keda/templates/deployment.yaml", deployment, 0o644));
        }
        Templates::None => {}
        Templates::Broken => {
            entries.push((
                "keda/templates/broken.yaml",
                b"name: {{ .Release.Name",
                0o644,
            ));
        }
    }
    tar_gz(&entries)
}

fn sources(chart_sha: &str) -> String {
    format!(
        r#"version: 1
components:
  kubernetes:
    artifacts:
      - name: kubeadm
        kind: binary
        url: https://dl.k8s.io/release/v{{v}}/bin/linux/{{arch}}/kubeadm
        checksum: {{sha256: {{"1.0.0": {{amd64: {k}, arm64: {k}}}}}}}
  helm:
    artifacts:
      - kind: archive
        url: https://get.helm.sh/helm-v{{v}}-linux-{{arch}}.tar.gz
        checksum: {{file: "{{url}}.sha256sum", format: sha256sum}}
        extract:
          - {{member: "linux-{{arch}}/helm", name: helm}}
  keda:
    artifacts:
      - name: keda
        kind: chart
        url: https://kedacore.github.io/charts/keda-{{v}}.tgz
        checksum: {{sha256: {{"2.0.0": {{all: {chart_sha}}}}}}}
        render: {{release: keda, namespace: keda}}
releases:
  "1.0.0":
    components: {{kubernetes: 1.0.0, helm: 3.0.0, keda: 2.0.0}}
    images:
      - {{name: ghcr.io/kedacore/keda, tag: 2.0.0, digest: "sha256:{d}", arches: [amd64, arm64], component: keda}}
"#,
        k = sha(b"kubeadm"),
        d = "d".repeat(64),
    )
}

fn upstream(templates: Templates) -> (Server, Sources) {
    let server = Server::start();
    server.put(
        &format!(
            "/dl.k8s.io/release/v1.0.0/bin/linux/{}/kubeadm",
            arch().as_str()
        ),
        &b"kubeadm"[..],
    );
    let helm = tar_gz(&[(
        &format!("linux-{}/helm", arch().as_str()),
        &standin_helm(),
        0o755,
    )]);
    server.put(
        &format!("{}.sha256sum", helm_archive()),
        format!(
            "{}  helm-v3.0.0-linux-{}.tar.gz\n",
            sha(&helm),
            arch().as_str()
        ),
    );
    server.put(&helm_archive(), helm);
    let chart = chart(templates);
    let text = sources(&sha(&chart));
    server.put(CHART, chart);
    (server, Sources::parse(&text, "test").unwrap())
}

fn options(server: &Server) -> kubegrid_bundle::BuildOptions {
    let mut opts = kubegrid_bundle::BuildOptions::new("1.0.0", &[arch()]);
    opts.mirrors = vec![server.url()];
    opts.progress = false;
    opts
}

#[test]
fn a_chart_plans_once_for_every_arch_with_its_pin_under_all() {
    let (_server, sources) = upstream(Templates::Deployment);
    let plan = sources
        .plan("1.0.0", &[Arch::Amd64, Arch::Arm64], None, &[])
        .unwrap();
    let charts: Vec<_> = plan
        .files
        .iter()
        .filter(|f| f.component == "keda")
        .collect();
    assert_eq!(charts.len(), 1);
    assert_eq!(charts[0].arch, Arch::All);
    assert_eq!(charts[0].kind, FileKind::Chart);
    assert_eq!(
        charts[0].url,
        "https://kedacore.github.io/charts/keda-2.0.0.tgz"
    );
    assert_eq!(charts[0].render.as_ref().unwrap().namespace, "keda");
}

#[tokio::test]
async fn a_chart_is_rendered_by_the_bundled_helm_into_manifests_the_engine_reads() {
    eprintln!(
        "helm here is e2e/helm-standin/helm.py, a TEST STAND-IN for the helm CLI rendering with Helm's Go SDK"
    );
    let (server, sources) = upstream(Templates::Deployment);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle.tar.zst");
    let mut build = kubegrid_bundle::prepare(&sources, &options(&server), &out)
        .await
        .unwrap();
    // The image pull is another test's matter; record the pin as the puller would.
    build.add_image(kubegrid_plan::ManifestImage {
        name: "ghcr.io/kedacore/keda".into(),
        tag: "2.0.0".into(),
        digest: format!("sha256:{}", "d".repeat(64)),
        upstream_digest: None,
        arches: vec![arch()],
        component: Some("keda".into()),
    });
    build.finish().unwrap();

    let bundle = Bundle::open(&unpacked(&out, tmp.path())).unwrap();
    let files = &bundle.manifest().files;
    let chart = files.iter().find(|f| f.kind == FileKind::Chart).unwrap();
    assert_eq!(chart.arch, Arch::All);
    assert_eq!(
        chart.path,
        std::path::Path::new("kedacore.github.io/charts/keda-2.0.0.tgz")
    );
    let rendered = files
        .iter()
        .find(|f| f.kind == FileKind::Manifests)
        .unwrap();
    assert_eq!(
        rendered.path,
        std::path::Path::new("kedacore.github.io/charts/keda-2.0.0.yaml")
    );
    assert_eq!(
        (
            rendered.arch,
            rendered.component.as_deref(),
            rendered.version.as_deref()
        ),
        (Arch::All, Some("keda"), Some("2.0.0"))
    );
    assert_eq!(
        rendered.source.as_deref(),
        Some(
            "https://kedacore.github.io/charts/keda-2.0.0.tgz#helm template keda --namespace keda"
        )
    );
    let text = std::fs::read_to_string(bundle.dir().join(&rendered.path)).unwrap();
    assert!(
        text.contains("# Source: keda/crds/scaledobjects.yaml"),
        "{text}"
    );
    assert!(
        text.contains("name: keda-operator\n  namespace: keda\n"),
        "{text}"
    );

    let keda = KedaContext::from_bundle(&bundle, true).unwrap();
    assert_eq!(keda.version, "2.0.0");
    assert_eq!(keda.namespace, "keda");
    assert_eq!(keda.crds(), ["scaledobjects.keda.sh"]);
    assert_eq!(
        keda.objects[2]["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/kedacore/keda@sha256:{}", "d".repeat(64)).as_str()
    );
}

#[tokio::test]
async fn a_chart_helm_cannot_render_or_a_bundle_without_helm_fails_the_build() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bad.tar.zst");
    for (templates, want) in [
        (
            Templates::Broken,
            "`helm template` exited with exit status: 1: Error: ",
        ),
        (Templates::None, "`helm template` printed no objects"),
    ] {
        let (server, sources) = upstream(templates);
        let err = kubegrid_bundle::build(&sources, &options(&server), &out)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RenderChart { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("chart keda 2.0.0 (https://kedacore.github.io/charts/keda-2.0.0.tgz)"),
            "{text}"
        );
        assert!(text.contains(want), "{want}: {text}");
        assert!(!out.exists());
    }

    let (server, sources) = upstream(Templates::Deployment);
    let mut opts = options(&server);
    opts.without = vec!["helm".into()];
    let err = kubegrid_bundle::build(&sources, &opts, &out)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the bundle has no helm for this machine's arch"),
        "{text}"
    );
    assert!(text.contains("without `--without helm`"), "{text}");
}

#[test]
fn charts_need_render_a_name_and_no_arch_and_render_is_for_charts_only() {
    let base = sources(&sha(b"chart"));
    for (from, to, want) in [
        (
            "        render: {release: keda, namespace: keda}\n",
            "",
            "a `chart` needs `render: {release, namespace}`",
        ),
        (
            "      - name: keda\n        kind: chart",
            "      - kind: chart",
            "a `chart` needs a `name`",
        ),
        (
            "charts/keda-{v}.tgz",
            "charts/keda-{v}-{arch}.tgz",
            "its URL takes no `{arch}`",
        ),
        (
            "{\"2.0.0\": {all:",
            "{\"2.0.0\": {amd64:",
            "a chart's pin goes under `all`",
        ),
        (
            "namespace: keda}",
            "namespace: Keda}",
            "render.namespace `Keda` must be a DNS label",
        ),
        (
            "          - {member: \"linux-{arch}/helm\", name: helm}\n",
            "          - {member: \"linux-{arch}/helm\", name: helm}\n        render: {release: a, namespace: b}\n",
            "only a `chart` can have `render`",
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let text = base.replace(from, to);
        let err = Sources::parse(&text, "test").unwrap_err().to_string();
        assert!(err.contains(want), "{want}: {err}");
    }
}
