//! The routing elements a reconciliation pass could not read ([`Blind`]):
//! each group's decided route is re-applied as a precaution until a
//! re-apply to the element fails, and one event per element says so
//! ([`Shared::record_blind`]), recorded when it changes, not every pass.

use std::collections::BTreeSet;

use super::*;

impl Shared {
    /// One event per routing element that could not be read in the pass
    /// (recorded when it changes, not every pass; forgotten once the
    /// element is read again), instead of one per group: a frontend's table
    /// that times out once is every one of its groups unobserved.
    pub(super) fn record_blind(&self, blind: Blind) {
        let mut st = self.lock();
        let keys: BTreeSet<String> = blind
            .elements
            .keys()
            .map(|e| format!("{BLIND_PREFIX}{e}"))
            .collect();
        st.recorded.clear_prefix_except(BLIND_PREFIX, &keys);
        for (element, b) in blind.elements {
            let mut msg = b.reason.clone();
            if !b.reapplied.is_empty() {
                msg.push_str(&format!(
                    "; re-applied the decided route of {} as a precaution (no drift was seen)",
                    Blind::groups(&b.reapplied)
                ));
            }
            if !b.skipped.is_empty() {
                msg.push_str(&format!(
                    "; {} not re-applied this pass (a re-apply to it failed)",
                    Blind::groups(&b.skipped)
                ));
            }
            if b.reapplied.is_empty() && b.skipped.is_empty() {
                // Its only group's re-apply failed: that group's event says so.
                continue;
            }
            let key = format!("{BLIND_PREFIX}{element}");
            if st.recorded.observe(&key, Some(&msg)) {
                // The group, when the element serves only one.
                let mut groups = b.reapplied.iter().chain(&b.skipped);
                let one = match (groups.next(), groups.next()) {
                    (Some(g), None) => Some(g.clone()),
                    _ => None,
                };
                self.event_locked(
                    &mut st,
                    EventKind::Reconciled,
                    one.as_deref(),
                    None,
                    msg,
                    vec![],
                    None,
                );
            }
        }
    }
}

/// Key prefix of the per-element condition "could not be read" (see
/// [`Shared::record_blind`]).
const BLIND_PREFIX: &str = "reconcile-blind/";

/// The routing elements a pass could not read, with what it did about
/// their groups: each group's decided route is re-applied as a precaution,
/// until a re-apply to the element fails (then the element can be neither
/// read nor written, and its other groups wait for the next pass instead
/// of a request each).
#[derive(Default)]
pub(super) struct Blind {
    elements: BTreeMap<String, BlindElement>,
}

#[derive(Default)]
struct BlindElement {
    /// Why the element could not be read (the first group's error).
    reason: String,
    reapplied: Vec<String>,
    skipped: Vec<String>,
    given_up: bool,
}

impl Blind {
    /// The element `element` could not be read (`reason`): its key.
    pub(super) fn element(&mut self, element: &str, reason: &str) -> String {
        self.elements
            .entry(element.to_string())
            .or_insert_with(|| BlindElement {
                reason: reason.to_string(),
                ..BlindElement::default()
            });
        element.to_string()
    }

    pub(super) fn given_up(&self, element: &str) -> bool {
        self.elements.get(element).is_some_and(|b| b.given_up)
    }

    pub(super) fn give_up(&mut self, element: &str) {
        if let Some(b) = self.elements.get_mut(element) {
            b.given_up = true;
        }
    }

    pub(super) fn skip(&mut self, element: &str, group: &str) {
        if let Some(b) = self.elements.get_mut(element) {
            b.skipped.push(group.to_string());
        }
    }

    pub(super) fn reapplied(&mut self, element: &str, group: &str) {
        if let Some(b) = self.elements.get_mut(element) {
            b.reapplied.push(group.to_string());
        }
    }

    /// "group web" or "3 groups (a, b, c)", at most ten named.
    fn groups(names: &[String]) -> String {
        match names {
            [one] => format!("group {one}"),
            _ => {
                let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
                let more = if names.len() > 10 { ", …" } else { "" };
                format!("{} groups ({}{more})", names.len(), shown.join(", "))
            }
        }
    }
}
