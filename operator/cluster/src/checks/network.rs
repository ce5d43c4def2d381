//! `pod-network`: a pod on one node reaches a pod on another.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, Client, api::ListParams};

use super::{
    CONTROL_PLANE_LABEL, CheckOptions, CheckResult, POD_NETWORK,
    probe::{self, ProbeSpec, SERVER_PORT},
    timed,
};
use crate::error::describe;

/// What the server pod serves, so a client success proves it reached that server.
const MARKER: &str = "kubegrid-pod-network";

/// Starts an HTTP server pod on one Ready node and fetches from it with a pod
/// pinned to another Ready node.
///
/// Fails with a detail saying so when fewer than two Ready, schedulable nodes
/// exist; the caller decides whether that cluster shape makes it a skip.
pub async fn check_pod_network(client: &Client, opts: &CheckOptions) -> CheckResult {
    timed(POD_NETWORK, async {
        let (server_node, client_node) = pick_nodes(client).await?;
        probe::ensure_namespace(client, &opts.namespace).await?;
        let api: Api<Pod> = Api::namespaced(client.clone(), &opts.namespace);
        let script = format!(
            "mkdir -p /tmp/www && echo {MARKER} > /tmp/www/index.html && \
             exec httpd -f -p {SERVER_PORT} -h /tmp/www"
        );
        let server = ProbeSpec {
            check: "net-server",
            command: vec!["sh".into(), "-c".into(), script],
            node: Some(&server_node),
            serves: true,
            runtime: None,
        };
        let server_name = probe::create(&api, &probe::probe_pod(opts, &server)?, opts).await?;
        let mut names = vec![server_name.clone()];
        let outcome = async {
            let ip = probe::wait_serving(&api, &server_name, opts)
                .await
                .map_err(|err| format!("server pod {server_name} on node {server_node}: {err}"))?;
            let host = if ip.contains(':') { format!("[{ip}]") } else { ip };
            let url = format!("http://{host}:{SERVER_PORT}/");
            let fetch = ProbeSpec {
                check: "net-client",
                command: ["wget", "-q", "-O-", "-T", "5", &url].map(String::from).to_vec(),
                node: Some(&client_node),
                serves: false,
                runtime: None,
            };
            let client_name = probe::create(&api, &probe::probe_pod(opts, &fetch)?, opts).await?;
            names.push(client_name.clone());
            let finished = probe::wait_finished(&api, &client_name, opts).await;
            let log = probe::log(&api, &client_name).await;
            let shown = probe::show_log(&log);
            // An unreadable log (apiserver-to-kubelet trouble) is not a pod
            // network failure; a readable one must show the server's page.
            let reached = log.as_ref().map_or(true, |text| text.contains(MARKER));
            match finished.as_deref() {
                Ok("Succeeded") if reached => Ok(format!(
                    "pod on node {client_node} fetched {url} from pod on node {server_node}"
                )),
                Ok(phase) => Err(format!(
                    "pod on node {client_node} could not fetch {url} from pod on node {server_node} \
                     (phase {phase}), expected the page {MARKER:?}; log:\n{shown}"
                )),
                Err(waited) => Err(format!(
                    "client pod {client_name} on node {client_node}: {waited}; log:\n{shown}"
                )),
            }
        }
        .await;
        probe::cleanup(&api, &names, outcome).await
    })
    .await
}

/// Two distinct Ready, uncordoned nodes, workers first so the check does not
/// lean on control planes when workers exist.
async fn pick_nodes(client: &Client) -> Result<(String, String), String> {
    let api: Api<Node> = Api::all(client.clone());
    let nodes = api
        .list(&ListParams::default())
        .await
        .map_err(|err| format!("could not list nodes: {}", describe(&err)))?
        .items;
    let mut usable: Vec<(bool, String)> = nodes
        .iter()
        .filter(|node| is_ready(node) && !is_cordoned(node))
        .filter_map(|node| {
            let control_plane = node
                .metadata
                .labels
                .as_ref()
                .is_some_and(|labels| labels.contains_key(CONTROL_PLANE_LABEL));
            node.metadata.name.clone().map(|name| (control_plane, name))
        })
        .collect();
    usable.sort();
    match usable.as_slice() {
        [(_, first), (_, second), ..] => Ok((first.clone(), second.clone())),
        _ => Err(format!(
            "needs two Ready, schedulable nodes, found {} ({}) of {} node(s); \
             expected at least 2 for a cross-node test",
            usable.len(),
            usable
                .iter()
                .map(|(_, name)| name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            nodes.len()
        )),
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|spec| spec.unschedulable)
        .unwrap_or(false)
}
