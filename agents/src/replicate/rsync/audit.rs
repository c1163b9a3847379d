//! The periodic audit of the peer (`audit_every`): a full pass owed to no
//! change here. What it sends or deletes that nothing here changed was
//! changed at the peer behind replication's back — a file removed or
//! altered there, a disk restored from an old copy, a tree wiped — and a
//! failover to the peer would have served it. The pass sets it right;
//! [`Seen`] keeps what it did, and the replicator's `drift` says it (the
//! group's alerts) until an audit finds nothing.

use std::path::{Path, PathBuf};

/// Most names kept of one audit (the count goes on).
const KEPT: usize = 10_000;
/// Names shown in the drift message.
const SHOWN: usize = 5;

/// What one audit's pass did, from rsync's `%i %l %n` lines.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// The names of the items it changed at the peer (at most [`KEPT`]).
    names: Vec<String>,
    /// How many items it changed at the peer in all.
    total: u64,
}

impl Seen {
    /// One line of the pass's output. Directories whose attributes alone
    /// differ (`.d…`: the peer sets a directory's mtime when an entry is
    /// made or removed in it) and the root are not counted.
    pub(super) fn note(&mut self, line: &str) {
        let (Some(flags), Some(rest)) = (line.get(..11), line.get(12..)) else {
            return;
        };
        if flags.starts_with(".d") {
            return;
        }
        let Some((_, name)) = rest.split_once(' ') else {
            return;
        };
        if name.is_empty() || name == "./" {
            return;
        }
        self.total += 1;
        if self.names.len() < KEPT {
            self.names.push(name.trim_end_matches('/').to_string());
        }
    }

    /// What the audit found changed at `target` behind replication's back,
    /// leaving out what changed here meanwhile (`changed`: paths relative
    /// to the source root, pending when the pass began or since): `None`
    /// when nothing.
    pub(super) fn drift(&self, changed: &[PathBuf], target: &str) -> Option<String> {
        let own = |n: &str| {
            let n = Path::new(n);
            changed.iter().any(|c| n.starts_with(c) || c.starts_with(n))
        };
        let theirs: Vec<&String> = self.names.iter().filter(|n| !own(n)).collect();
        let mine = self.names.len() - theirs.len();
        let total = self.total.saturating_sub(mine as u64);
        if total == 0 {
            return None;
        }
        let shown: Vec<String> = theirs
            .iter()
            .take(SHOWN)
            .map(|n| format!("{n:?}"))
            .collect();
        Some(format!(
            "the audit found {total} item(s) at {target} that replication did not put there \
             (removed, altered or added at the peer behind its back), e.g. {}; sent again — \
             look at what changes the peer's copy",
            shown.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_counts_what_changed_at_the_peer_and_not_what_changed_here() {
        let mut seen = Seen::default();
        for line in [
            ">f+++++++++ 5 gone-at-peer.txt",
            "*deleting   0 added-at-peer.txt",
            ".d..t...... 4096 dir/",
            ".d..t...... 4096 ./",
            ">f.st...... 9 dir/written-here.txt",
            "cd+++++++++ 4096 wiped/",
        ] {
            seen.note(line);
        }
        let changed = vec![PathBuf::from("dir/written-here.txt")];
        let d = seen.drift(&changed, "b:873/data").expect("drift");
        assert!(d.contains("found 3 item(s) at b:873/data"), "{d}");
        assert!(
            d.contains("\"gone-at-peer.txt\"")
                && d.contains("\"added-at-peer.txt\"")
                && d.contains("\"wiped\""),
            "{d}"
        );
        assert!(!d.contains("written-here"), "{d}");
        let mut clean = Seen::default();
        clean.note(".d..t...... 4096 ./");
        clean.note(">f.st...... 9 dir/written-here.txt");
        assert_eq!(clean.drift(&changed, "b:873/data"), None);
    }
}
