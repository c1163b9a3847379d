//! Level-triggered event bookkeeping: for every condition worth an event
//! (a site isolated, no healthy standby, the RPO over its limit, a reconcile
//! that keeps failing), what was last *recorded*. An event is due only when
//! what is observed now differs from it — desired vs observed, as in
//! controllers — instead of "already raised" flags or searching recent events
//! for the same text.

use std::collections::{BTreeMap, BTreeSet};

/// The last recorded state of every condition, by key.
#[derive(Debug, Default)]
pub struct Recorded {
    last: BTreeMap<String, String>,
}

impl Recorded {
    /// Observe condition `key` as `now` (`None`: the condition does not hold).
    /// Returns true when that differs from what was last recorded (and
    /// records it): the caller then records an event saying what changed.
    pub fn observe(&mut self, key: &str, now: Option<&str>) -> bool {
        let before = self.last.get(key).map(String::as_str);
        if before == now {
            return false;
        }
        match now {
            Some(v) => {
                self.last.insert(key.to_string(), v.to_string());
            }
            None => {
                self.last.remove(key);
            }
        }
        true
    }

    /// Whether condition `key` was last recorded as holding.
    pub fn holds(&self, key: &str) -> bool {
        self.last.contains_key(key)
    }

    /// Forget every condition under `prefix` but those `keep` names (the
    /// conditions observed in a pass that looked at every one of them).
    pub fn clear_prefix_except(&mut self, prefix: &str, keep: &BTreeSet<String>) {
        self.last
            .retain(|k, _| !k.starts_with(prefix) || keep.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_due_only_when_the_observation_changes() {
        let mut r = Recorded::default();
        assert!(!r.observe("no_standby/web", None), "nothing to say");
        assert!(r.observe("no_standby/web", Some("b down")));
        assert!(!r.observe("no_standby/web", Some("b down")), "same state");
        assert!(
            r.observe("no_standby/web", Some("b and c down")),
            "a new fact"
        );
        assert!(r.holds("no_standby/web"));
        assert!(r.observe("no_standby/web", None), "it ended");
        assert!(!r.holds("no_standby/web"));
        r.observe("reconcile-blind/fe1", Some("x"));
        r.observe("reconcile-blind/fe10", Some("y"));
        r.observe("reconcile-blind/fe2", Some("z"));
        r.observe("other/fe1", Some("w"));
        let keep = BTreeSet::from(["reconcile-blind/fe10".to_string()]);
        r.clear_prefix_except("reconcile-blind/", &keep);
        assert!(!r.holds("reconcile-blind/fe1") && !r.holds("reconcile-blind/fe2"));
        assert!(r.holds("reconcile-blind/fe10"), "kept");
        assert!(r.holds("other/fe1"), "another prefix");
        assert!(
            r.observe("reconcile-blind/fe1", Some("x")),
            "raised again after recovery"
        );
    }
}
