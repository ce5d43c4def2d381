//! The arithmetic of an etcd membership change, checked before any host is contacted: a
//! change that would lose quorum is refused outright, and one that leaves an even member
//! count (which tolerates no more failures than the odd count below it) only with `--force`.

/// The etcd members before and after a change, by Node name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Members the cluster has now (the journal's members with the etcd role, or the
    /// control-plane role when etcd is stacked).
    pub before: Vec<String>,
    /// Members the spec asks for.
    pub after: Vec<String>,
}

/// Votes a cluster of `n` members needs to commit anything.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// Member failures a cluster of `n` members survives.
pub fn tolerated(n: usize) -> usize {
    n.saturating_sub(1) / 2
}

impl Change {
    /// Members the spec no longer lists, in the cluster's order.
    pub fn removed(&self) -> Vec<&str> {
        self.before
            .iter()
            .filter(|m| !self.after.contains(m))
            .map(String::as_str)
            .collect()
    }

    /// Members the spec adds, in the spec's order.
    pub fn added(&self) -> Vec<&str> {
        self.after
            .iter()
            .filter(|m| !self.before.contains(m))
            .map(String::as_str)
            .collect()
    }

    /// Whether the change is allowed; `force` accepts an even member count, never a quorum
    /// loss. The refusal carries the arithmetic. A cluster without members yet (not
    /// installed) is the spec validation's business (an odd count), not this one's.
    pub fn check(&self, force: bool) -> Result<(), String> {
        let (removed, added) = (self.removed(), self.added());
        let n = self.before.len();
        if n == 0 || (removed.is_empty() && added.is_empty()) {
            return Ok(());
        }
        let left = n - removed.len();
        if !removed.is_empty() && left < quorum(n) {
            return Err(format!(
                "removing {} leaves {left} of {n} etcd members: a {n}-member cluster needs {} for quorum\n  hint: remove at most {} member(s) per apply, waiting for each apply to finish",
                names(&removed),
                quorum(n),
                n - quorum(n),
            ));
        }
        let m = self.after.len();
        if m.is_multiple_of(2) && !force {
            let what = match (removed.is_empty(), added.is_empty()) {
                (false, true) => format!("removing {} leaves {m} members", names(&removed)),
                (true, false) => format!("adding {} makes {m} members", names(&added)),
                _ => format!(
                    "removing {} and adding {} makes {m} members",
                    names(&removed),
                    names(&added)
                ),
            };
            return Err(format!(
                "{what}, an even count that tolerates no more failures than {}; pass --force to accept\n  hint: an even count is fine as one step of a replacement (add the new member, then remove the old one); --force never allows a quorum loss",
                m - 1
            ));
        }
        Ok(())
    }
}

/// "a", "a and b", "a, b and c".
fn names(list: &[&str]) -> String {
    match list {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(before: &[&str], after: &[&str]) -> Change {
        Change {
            before: before.iter().map(|s| s.to_string()).collect(),
            after: after.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn quorum_and_tolerance_follow_etcd() {
        assert_eq!((1..=6).map(quorum).collect::<Vec<_>>(), [1, 2, 2, 3, 3, 4]);
        assert_eq!(
            (1..=6).map(tolerated).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2]
        );
    }

    #[test]
    fn a_removal_that_loses_quorum_is_refused_even_with_force() {
        let c = change(&["cp-1", "cp-2", "cp-3"], &["cp-3"]);
        for force in [false, true] {
            let e = c.check(force).unwrap_err();
            assert!(
                e.starts_with(
                    "removing cp-1 and cp-2 leaves 1 of 3 etcd members: a 3-member cluster needs 2 for quorum"
                ),
                "{e}"
            );
        }
        let e = change(&["a", "b", "c", "d", "e"], &["a", "b"])
            .check(true)
            .unwrap_err();
        assert!(e.contains("removing c, d and e leaves 2 of 5"), "{e}");
    }

    #[test]
    fn an_even_count_needs_force() {
        let e = change(&["cp-1", "cp-2", "cp-3"], &["cp-2", "cp-3"])
            .check(false)
            .unwrap_err();
        assert!(
            e.starts_with(
                "removing cp-1 leaves 2 members, an even count that tolerates no more failures than 1; pass --force to accept"
            ),
            "{e}"
        );
        change(&["cp-1", "cp-2", "cp-3"], &["cp-2", "cp-3"])
            .check(true)
            .unwrap();
        let add = change(&["a", "b", "c"], &["a", "b", "c", "d"]);
        let e = add.check(false).unwrap_err();
        assert!(
            e.starts_with(
                "adding d makes 4 members, an even count that tolerates no more failures than 3"
            ),
            "{e}"
        );
        add.check(true).unwrap();
        let swap = change(&["a", "b", "c", "d"], &["b", "c", "d", "e"]);
        assert!(
            swap.check(false)
                .unwrap_err()
                .starts_with("removing a and adding e makes 4 members")
        );
    }

    #[test]
    fn odd_results_and_no_change_pass() {
        // 4 -> 3 (the second step of a replacement), 3 -> 3 (replacing a dead member in one
        // apply), 3 -> 5, an unchanged even cluster, and a cluster not installed yet.
        change(&["a", "b", "c", "d"], &["b", "c", "d"])
            .check(false)
            .unwrap();
        change(&["a", "b", "c"], &["a", "b", "d"])
            .check(false)
            .unwrap();
        change(&["a", "b", "c"], &["a", "b", "c", "d", "e"])
            .check(false)
            .unwrap();
        change(&["a", "b", "c", "d"], &["a", "b", "c", "d"])
            .check(false)
            .unwrap();
        change(&[], &["a", "b"]).check(false).unwrap();
    }
}
