//! The order a push carries into a standby's rsync daemon: which group it
//! replicates, from which site, at which epoch. The daemon hands its
//! `pre-xfer exec` the module, the host and the arguments, never who
//! sends them or under which authority; so the pushing agent states its
//! order with rsync's `--early-input` (`warden-push group=G site=S
//! epoch=N`, what its authority state holds when the transfer starts), the
//! daemon's `early exec` (`warden rsync-gate --early`) keeps it for the
//! connection in the site's state directory (`gate/RSYNC_PID`: both execs
//! run in the same daemon process), and the `pre-xfer exec` takes it and
//! judges it ([`super::check`]): a push stated for an epoch older than the
//! one this site knows of the group comes from a site deposed by a
//! failover it never heard of, and is refused, saying so.
//!
//! The order is not a signature: whoever holds the module's password can
//! state any epoch. It stops a stale pusher (a site failed away from while
//! cut off from the orchestrator but not from a third site), not a forger.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Most bytes of early input kept (rsync sends at most about 5 KiB).
const MAX_INPUT: usize = 8 * 1024;

/// A handoff older than this is from a connection that ended before its
/// `pre-xfer exec` (or from another configuration): never taken, removed.
/// (The daemon runs the `pre-xfer exec` as soon as the client has sent its
/// arguments, right after the `early exec`.)
const STALE_AFTER: Duration = Duration::from_secs(600);

/// Most handoffs waiting at once: each is removed by its connection's
/// `pre-xfer exec` within moments, so more than this (far above a daemon's
/// `max connections`) is a client that opens connections and drops them
/// after the `early exec`; the connection is refused, the disk not filled.
const MAX_WAITING: usize = 1024;

/// What a pushing site states of its push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOrder {
    pub group: String,
    pub site: String,
    pub epoch: u64,
}

impl PushOrder {
    /// The line the pusher sends as early input.
    pub fn line(&self) -> String {
        format!(
            "warden-push group={} site={} epoch={}\n",
            self.group, self.site, self.epoch
        )
    }

    /// A line made by [`PushOrder::line`]; an error says what is wrong.
    pub fn parse(text: &str) -> Result<PushOrder, String> {
        let line = text.strip_suffix('\n').unwrap_or(text);
        let shown = || shown(line);
        let Some(rest) = line.strip_prefix("warden-push ") else {
            return Err(format!(
                "its early input is not a warden push order (`warden-push group=G site=S epoch=N`): {}",
                shown()
            ));
        };
        let (mut group, mut site, mut epoch) = (None, None, None);
        for field in rest.split(' ') {
            match field.split_once('=') {
                Some(("group", v)) if group.is_none() && !v.is_empty() => group = Some(v),
                Some(("site", v)) if site.is_none() && !v.is_empty() => site = Some(v),
                Some(("epoch", v)) if epoch.is_none() => epoch = v.parse::<u64>().ok(),
                _ => {
                    return Err(format!(
                    "its push order has a field that is not group=, site= or epoch= once each: {}",
                    shown()
                ))
                }
            }
        }
        match (group, site, epoch) {
            (Some(g), Some(s), Some(e)) => Ok(PushOrder {
                group: g.into(),
                site: s.into(),
                epoch: e,
            }),
            _ => Err(format!(
                "its push order lacks a group, a site or a number epoch: {}",
                shown()
            )),
        }
    }
}

/// What the `pre-xfer exec` learns of the push's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stated {
    /// No `early exec` kept anything for this connection: the module has
    /// no `early exec` line (docs/rsyncd.md), pushes are judged by role.
    NotAsked,
    /// The `early exec` ran and the client sent no early input: not a
    /// warden agent's push (or an older one's).
    Nothing,
    /// An early input that is no push order; why.
    Bad(String),
    Order(PushOrder),
}

/// What the `early exec` keeps for the `pre-xfer exec` of its connection.
#[derive(Debug, Serialize, Deserialize)]
struct Handoff {
    module: String,
    host: String,
    input: String,
    /// Seconds since the epoch when it was kept.
    at: u64,
    /// [`boot_secs`] when it was kept (absent from an older version's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boot: Option<u64>,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("gate")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the host booted (`CLOCK_BOOTTIME`): the same for both
/// execs of a connection and never stepped — a wall clock set forward
/// by more than [`STALE_AFTER`] between them (NTP's first sync) made the
/// handoff look stale, its stated order dropped and the push judged by
/// role only.
fn boot_secs() -> u64 {
    rustix::time::clock_gettime(rustix::time::ClockId::Boottime).tv_sec as u64
}

/// How long ago `h` was kept: by the boot clock when it says (every
/// handoff this version keeps), else by the wall clock (one kept by an
/// older version, a moment before an upgrade).
fn age(h: &Handoff) -> u64 {
    match h.boot {
        Some(b) => boot_secs().saturating_sub(b),
        None => now_secs().saturating_sub(h.at),
    }
}

/// The `early exec`: keeps `input` (the client's early input, possibly
/// empty) for connection `pid` of `module` from `host`. Removes handoffs
/// left by connections that ended before their `pre-xfer exec`.
pub fn keep(
    state_dir: &Path,
    pid: &str,
    module: &str,
    host: &str,
    input: &[u8],
) -> Result<(), String> {
    let pid = pid_name(pid)?;
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    let mut waiting = 0;
    if let Ok(entries) = std::fs::read_dir(&d) {
        for e in entries.flatten() {
            // Old by its modification time (the wall clock), and by what
            // it says of itself (the boot clock) when it can be read: a
            // clock set forward makes every waiting handoff look old.
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_AFTER)
                && std::fs::read(e.path())
                    .ok()
                    .and_then(|t| serde_json::from_slice::<Handoff>(&t).ok())
                    .is_none_or(|h| age(&h) > STALE_AFTER.as_secs());
            if old {
                let _ = std::fs::remove_file(e.path());
            } else {
                waiting += 1;
            }
        }
    }
    if waiting >= MAX_WAITING {
        return Err(format!(
            "{} holds {waiting} pushes' orders not yet judged (connections dropped after their \
             early exec?); this one is refused until they age out",
            d.display()
        ));
    }
    let input = &input[..input.len().min(MAX_INPUT)];
    let h = Handoff {
        module: module.into(),
        host: host.into(),
        input: String::from_utf8_lossy(input).into_owned(),
        at: now_secs(),
        boot: Some(boot_secs()),
    };
    let text = serde_json::to_vec(&h).map_err(|e| e.to_string())?;
    let path = d.join(pid);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The `pre-xfer exec`: takes (and removes) what the `early exec` kept
/// for connection `pid`, if it is this connection's (same module and host,
/// not stale).
pub fn take(state_dir: &Path, pid: &str, module: &str, host: &str) -> Stated {
    let Ok(pid) = pid_name(pid) else {
        return Stated::NotAsked;
    };
    let path = dir(state_dir).join(pid);
    let Ok(text) = std::fs::read(&path) else {
        return Stated::NotAsked;
    };
    let _ = std::fs::remove_file(&path);
    let Ok(h) = serde_json::from_slice::<Handoff>(&text) else {
        return Stated::Bad(format!(
            "what the early exec kept for it ({}) cannot be read",
            path.display()
        ));
    };
    if h.module != module || h.host != host || age(&h) > STALE_AFTER.as_secs() {
        return Stated::NotAsked;
    }
    if h.input.is_empty() {
        return Stated::Nothing;
    }
    match PushOrder::parse(&h.input) {
        Ok(o) => Stated::Order(o),
        Err(e) => Stated::Bad(e),
    }
}

/// `RSYNC_PID` as a file name: digits only.
fn pid_name(pid: &str) -> Result<&str, String> {
    if !pid.is_empty() && pid.len() <= 20 && pid.bytes().all(|b| b.is_ascii_digit()) {
        Ok(pid)
    } else {
        Err(format!("RSYNC_PID {} is not a process id", shown(pid)))
    }
}

/// `text` quoted for a message, at most 200 characters of it.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_reads_back_and_bad_ones_say_why() {
        let o = PushOrder {
            group: "web".into(),
            site: "a".into(),
            epoch: 7,
        };
        assert_eq!(PushOrder::parse(&o.line()), Ok(o));
        for (bad, says) in [
            ("hello", "not a warden push order"),
            ("warden-push group=web site=a", "lacks"),
            ("warden-push group=web site=a epoch=x", "lacks"),
            ("warden-push group=web group=db site=a epoch=1", "once each"),
            (
                "warden-push group=web site=a epoch=1 role=active",
                "once each",
            ),
        ] {
            let e = PushOrder::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_handoff_is_taken_once_by_its_own_connection() {
        let d = tempfile::tempdir().unwrap();
        let line = b"warden-push group=web site=a epoch=7\n";
        keep(d.path(), "41", "data", "10.0.0.1", line).unwrap();
        // another module or host: not this connection's
        assert_eq!(take(d.path(), "41", "other", "10.0.0.1"), Stated::NotAsked);
        keep(d.path(), "41", "data", "10.0.0.1", line).unwrap();
        assert!(matches!(
            take(d.path(), "41", "data", "10.0.0.1"),
            Stated::Order(o) if o.epoch == 7 && o.site == "a"
        ));
        assert_eq!(take(d.path(), "41", "data", "10.0.0.1"), Stated::NotAsked);
        keep(d.path(), "42", "data", "10.0.0.1", b"").unwrap();
        assert_eq!(take(d.path(), "42", "data", "10.0.0.1"), Stated::Nothing);
        keep(d.path(), "43", "data", "10.0.0.1", b"junk").unwrap();
        assert!(matches!(
            take(d.path(), "43", "data", "10.0.0.1"),
            Stated::Bad(_)
        ));
        assert!(keep(d.path(), "../x", "data", "h", b"").is_err());
        assert_eq!(take(d.path(), "../x", "data", "h"), Stated::NotAsked);
        // Connections dropped after their early exec: bounded.
        for pid in 0..MAX_WAITING {
            keep(d.path(), &(1000 + pid).to_string(), "data", "h", b"").unwrap();
        }
        let e = keep(d.path(), "99", "data", "h", b"").unwrap_err();
        assert!(e.contains("not yet judged"), "{e}");
    }

    /// The wall clock set forward by more than [`STALE_AFTER`] between
    /// the daemon's two execs (NTP's first sync after a boot): the order
    /// the push stated is still judged — before, the handoff looked
    /// stale, was dropped, and the push was judged by role only (a
    /// deposed site's push at an old epoch let through), and the next
    /// connection's early exec removed every handoff waiting.
    #[test]
    fn a_clock_set_forward_between_the_execs_keeps_the_stated_order() {
        let d = tempfile::tempdir().unwrap();
        let line = b"warden-push group=web site=a epoch=7\n";
        keep(d.path(), "41", "data", "10.0.0.1", line).unwrap();
        keep(d.path(), "42", "data", "10.0.0.1", line).unwrap();
        // What the wall clock says of both: kept an hour ago.
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for pid in ["41", "42"] {
            let p = dir(d.path()).join(pid);
            let mut h: Handoff = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            h.at -= 3600;
            std::fs::write(&p, serde_json::to_vec(&h).unwrap()).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(hour_ago)
                .unwrap();
        }
        // Another connection's early exec does not sweep them away...
        keep(d.path(), "43", "data", "10.0.0.1", line).unwrap();
        // ...and each pre-xfer exec judges the order its push stated.
        for pid in ["41", "42"] {
            assert!(
                matches!(
                    take(d.path(), pid, "data", "10.0.0.1"),
                    Stated::Order(o) if o.epoch == 7
                ),
                "connection {pid}'s order was dropped"
            );
        }
        // One kept by an older version (no boot clock) is still judged by
        // the wall clock.
        let p = dir(d.path()).join("44");
        let old = r#"{"module":"data","host":"h","input":"","at":5}"#;
        std::fs::write(&p, old).unwrap();
        assert_eq!(take(d.path(), "44", "data", "h"), Stated::NotAsked);
    }
}
