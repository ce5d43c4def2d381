//! `dns`: cluster DNS resolves the kubernetes Service from inside a pod.

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

use super::{
    CheckOptions, CheckResult, DNS,
    probe::{self, ProbeSpec},
    timed,
};

/// Runs `nslookup kubernetes.default.svc.<dnsDomain>` in a pod and checks
/// that it succeeds; the pod's log goes into the detail on failure.
pub async fn check_dns(client: &Client, opts: &CheckOptions) -> CheckResult {
    timed(DNS, async {
        probe::ensure_namespace(client, &opts.namespace).await?;
        let host = format!("kubernetes.default.svc.{}", opts.dns_domain);
        let api: Api<Pod> = Api::namespaced(client.clone(), &opts.namespace);
        let spec = ProbeSpec {
            check: DNS,
            command: vec!["nslookup".into(), host.clone()],
            node: None,
            serves: false,
            runtime: None,
        };
        let pod = probe::probe_pod(opts, &spec)?;
        let name = probe::create(&api, &pod, opts).await?;
        let outcome = resolve(&api, &name, &host, opts).await;
        probe::cleanup(&api, &[name], outcome).await
    })
    .await
}

async fn resolve(
    api: &Api<Pod>,
    name: &str,
    host: &str,
    opts: &CheckOptions,
) -> Result<String, String> {
    let pod_ref = format!("{}/{name}", opts.namespace);
    let finished = probe::wait_finished(api, name, opts).await;
    let log = probe::log(api, name).await;
    let shown = probe::show_log(&log);
    match finished.as_deref() {
        Ok("Succeeded") => Ok(format!(
            "resolved {host} in pod {pod_ref}: {}",
            one_line(shown)
        )),
        Ok(phase) => Err(format!(
            "nslookup {host} failed in pod {pod_ref} (phase {phase}), expected it to resolve; log:\n{shown}"
        )),
        Err(waited) => Err(format!(
            "pod {pod_ref} running nslookup {host}: {waited}; log:\n{shown}"
        )),
    }
}

/// Folds nslookup's multi-line answer into the one-line success detail.
fn one_line(text: &str) -> String {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}
