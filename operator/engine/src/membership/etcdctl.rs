//! `etcdctl` run on a running member over the agent, with kubegrid's client certificate, and
//! what its answers mean.

use kubegrid_agent::protocol::{Action, CommandArgs, PROTOCOL_VERSION, Plan, Task};

use crate::{
    operation::Run,
    phases::fan_out::{Job, fan_out},
};

/// The progress and journal phase of membership changes.
pub const PHASE: &str = "etcd-membership";

/// etcdctl against the member's own client endpoint, with the health-check client
/// certificate that kubegrid's etcd CA issued to every member.
pub(crate) const ETCDCTL: &str = "ETCDCTL_API=3 /usr/local/bin/etcdctl --endpoints https://127.0.0.1:2379 \
    --cacert /etc/etcd/pki/ca.crt --cert /etc/etcd/pki/healthcheck-client.crt \
    --key /etc/etcd/pki/healthcheck-client.key --command-timeout 10s";

/// One line of `etcdctl member list -w simple`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member ID in hex, as `member remove` takes it.
    pub id: String,
    /// False for a member that was added but has not started yet.
    pub started: bool,
    /// Its name; empty until it started.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
}

/// Parses `member list -w simple` (`id, status, name, peer URLs, client URLs[, learner]`);
/// lines of another shape are skipped.
pub fn parse_members(text: &str) -> Vec<Member> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(", ").map(str::trim).collect();
            if fields.len() < 5 || !fields[0].chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            Some(Member {
                id: fields[0].to_string(),
                started: fields[1] == "started",
                name: fields[2].to_string(),
                peer_urls: fields[3]
                    .split(',')
                    .filter(|u| !u.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .filter(|m| !m.id.is_empty())
        .collect()
}

/// The member of `list` that is Node `name` at `peer_url`: by name once started, by peer
/// URL before (an added member has no name until it starts).
pub fn find<'a>(list: &'a [Member], name: &str, peer_url: &str) -> Option<&'a Member> {
    list.iter()
        .find(|m| m.name == name || m.peer_urls.iter().any(|u| u == peer_url))
}

/// `--initial-cluster` for a member joining the cluster of `list` (which already holds it,
/// as added): every member's `name=peer URL`, the unstarted joiner under its own name.
pub fn initial_cluster(list: &[Member], name: &str, peer_url: &str) -> String {
    list.iter()
        .flat_map(|m| {
            let member_name = if m.peer_urls.iter().any(|u| u == peer_url) {
                name
            } else {
                m.name.as_str()
            };
            m.peer_urls
                .iter()
                .map(move |u| format!("{member_name}={u}"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The shell command of `member list`.
pub fn list_command() -> String {
    format!("{ETCDCTL} member list -w simple")
}

/// The shell command of `member add`; etcd refuses an add that would leave too few started
/// members for quorum (its strict reconfiguration check).
pub fn add_command(name: &str, peer_url: &str) -> String {
    format!("{ETCDCTL} member add {name} --peer-urls={peer_url}")
}

/// The shell command of `member remove`; etcd refuses a removal that would leave too few
/// started members for quorum.
pub fn remove_command(id: &str) -> String {
    format!("{ETCDCTL} member remove {id}")
}

/// Runs `script` with `/bin/sh -c` on host `index` (a running member) as task `task`;
/// returns its output, or why it failed. The host is not failed for it: the caller decides.
pub async fn on_host(
    run: &mut Run,
    index: usize,
    task: &str,
    script: String,
) -> Result<String, String> {
    let job = Job {
        index,
        plan: Plan {
            protocol: PROTOCOL_VERSION,
            phase: PHASE.to_string(),
            check_mode: false,
            store_dir: None,
            state_dir: None,
            blobs: Vec::new(),
            tasks: vec![Task {
                name: task.to_string(),
                action: Action::Command(CommandArgs {
                    argv: vec!["/bin/sh".into(), "-c".into(), script],
                    creates: None,
                    unless: None,
                    env: Default::default(),
                    redact: Vec::new(),
                    watch: Vec::new(),
                }),
                always: false,
            }],
        },
        blobs: Vec::new(),
        persist: true,
    };
    let host = run.reports[index].name.clone();
    let Some(done) = fan_out(run, PHASE, vec![job]).await.pop() else {
        return Err(format!("{host} is no longer connected"));
    };
    match done.result {
        Ok(o) => match (o.failure, o.tasks.into_iter().next()) {
            (None, Some(t)) => Ok(t.output),
            (Some(why), t) => Err(format!(
                "{why}{}",
                t.map(|t| format!(": {}", t.output.trim()))
                    .unwrap_or_default()
            )),
            (None, None) => Err(format!("{host}: the agent reported no result")),
        },
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
8e9e05c52164694d, started, cp-1, https://10.0.0.11:2380, https://10.0.0.11:2379, false
91bc3c398fb3c146, started, cp-2, https://10.0.0.12:2380, https://10.0.0.12:2379, false
fd422379fda50e48, unstarted, , https://10.0.0.14:2380, , false
";

    #[test]
    fn member_lists_parse_with_unstarted_members() {
        let list = parse_members(&format!("{{\"level\":\"warn\"}}\n{LIST}"));
        assert_eq!(list.len(), 3);
        assert_eq!(
            list[0],
            Member {
                id: "8e9e05c52164694d".into(),
                started: true,
                name: "cp-1".into(),
                peer_urls: vec!["https://10.0.0.11:2380".into()],
            }
        );
        assert!(!list[2].started);
        assert_eq!(list[2].name, "");
        // etcd 3.4 prints no learner column; the shape is the same otherwise.
        let old = parse_members("8e9e05c52164694d, started, a, https://x:2380, https://x:2379\n");
        assert_eq!(old[0].name, "a");
    }

    #[test]
    fn an_added_member_is_found_by_peer_url_and_named_in_the_initial_cluster() {
        let list = parse_members(LIST);
        let joiner = find(&list, "cp-4", "https://10.0.0.14:2380").unwrap();
        assert_eq!(joiner.id, "fd422379fda50e48");
        assert!(find(&list, "cp-9", "https://10.0.0.19:2380").is_none());
        assert_eq!(
            find(&list, "cp-2", "https://other:2380").unwrap().id,
            "91bc3c398fb3c146"
        );
        assert_eq!(
            initial_cluster(&list, "cp-4", "https://10.0.0.14:2380"),
            "cp-1=https://10.0.0.11:2380,cp-2=https://10.0.0.12:2380,cp-4=https://10.0.0.14:2380"
        );
    }

    #[test]
    fn commands_use_kubegrids_client_certificate_on_the_local_member() {
        let add = add_command("cp-4", "https://10.0.0.14:2380");
        assert!(
            add.ends_with("member add cp-4 --peer-urls=https://10.0.0.14:2380"),
            "{add}"
        );
        assert!(add.contains("--endpoints https://127.0.0.1:2379"));
        assert!(add.contains("--cert /etc/etcd/pki/healthcheck-client.crt"));
        assert!(remove_command("fd42").ends_with("member remove fd42"));
        assert!(list_command().ends_with("member list -w simple"));
    }
}
