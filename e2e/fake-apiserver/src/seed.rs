//! Seeding a fake cluster the way a healthy kubeadm cluster looks, and changing it while a
//! test runs.

use serde_json::{Value, json};

use crate::{Behaviour, FakeCluster, objects};

/// What busybox `nslookup kubernetes.default.svc.cluster.local` prints in a healthy cluster.
pub const NSLOOKUP_OUTPUT: &str = "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\n\
                                   Name:\tkubernetes.default.svc.cluster.local\nAddress: 10.96.0.1\n";

/// The page kubegrid-cluster's `pod-network` server pod serves.
pub const POD_NETWORK_PAGE: &str = "kubegrid-pod-network";

impl FakeCluster {
    /// Rules for the probe pods of kubegrid-cluster's `dns` and `pod-network` checks in a
    /// healthy cluster whose DNS domain is `dns_domain`: `nslookup` resolves, `httpd` serves
    /// [`POD_NETWORK_PAGE`], and `wget` reaches a serving pod on another node.
    pub fn busybox_rules(&self, dns_domain: &str) -> &Self {
        self.rule(
            &format!("nslookup kubernetes.default.svc.{dns_domain}"),
            Behaviour::Exit {
                succeed: true,
                log: NSLOOKUP_OUTPUT.replace("cluster.local", dns_domain),
            },
        )
        .rule(
            "httpd -f -p 8080",
            Behaviour::Serve {
                page: POD_NETWORK_PAGE.into(),
            },
        )
        .rule("wget -q -O- -T 5", Behaviour::Fetch { network_up: true })
    }

    /// Sets Node `name`'s Ready condition as its kubelet would report it; `false` on a node
    /// the fake does not have.
    pub fn set_node_ready(&self, name: &str, ready: bool) -> bool {
        let mut state = self.state();
        let Some(node) = state.nodes.get_mut(name) else {
            return false;
        };
        let fresh = objects::node(name, ready, &[], &[]);
        let condition = fresh["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .expect("a made node has a Ready condition");
        let conditions = &mut node["status"]["conditions"];
        if !conditions.is_array() {
            *conditions = json!([]);
        }
        let list = conditions.as_array_mut().expect("made an array above");
        list.retain(|c| c["type"] != "Ready");
        list.push(condition);
        true
    }

    /// Node `name`'s labels as the fake holds them now; `None` when there is no such Node.
    pub fn node_labels(&self, name: &str) -> Option<Value> {
        self.state()
            .nodes
            .get(name)
            .map(|node| node["metadata"]["labels"].clone())
    }
}
