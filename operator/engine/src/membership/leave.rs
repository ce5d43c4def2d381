//! A member leaving external etcd: `etcdctl member remove` on a running member of this
//! operation, so the leaving host (perhaps dead) is never needed for it.

use super::{etcdctl, join};
use crate::{kubernetes::MemberRecord, operation::Run};

/// Removes Node `name` (at `record.address`) from etcd's member list; says what it did, or
/// why it could not. A member already gone is not an error (an earlier apply removed it).
pub async fn remove_member(
    run: &mut Run,
    name: &str,
    record: &MemberRecord,
) -> Result<String, String> {
    let peer = kubegrid_plan::etcd_peer_url(&record.address);
    let (r, list) = join::member_list(run, &[]).await?;
    let runner = run.reports[r].name.clone();
    let Some(member) = etcdctl::find(&list, name, &peer) else {
        return Ok(format!(
            "it was no longer an etcd member (list read on {runner})"
        ));
    };
    let id = member.id.clone();
    etcdctl::on_host(run, r, "etcd member remove", etcdctl::remove_command(&id))
        .await
        .map_err(|e| format!("etcdctl member remove {id} on {runner}: {e}"))?;
    Ok(format!("etcd member {id} removed on {runner}"))
}
