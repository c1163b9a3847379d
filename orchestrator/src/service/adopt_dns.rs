//! A `hybrid` group's adoption of its DNS name (the frontend layer): the
//! frontend the name points at and the epoch it was written at, read under
//! the licence — by a store new to the group and by `warden adopt-epoch`
//! alike, so that the group's frontend is the one users enter at, and its
//! next pointing carries an epoch above the name's.

use super::*;

/// Where an epoch seen ahead at a hybrid group's DNS name was seen.
pub(super) const DNS_SEEN_AT: &str = "the DNS name of the frontend layer";

/// A hybrid group's DNS name as read for an adoption.
pub(super) enum DnsRead {
    /// Not a hybrid group: no DNS name to adopt.
    NoName,
    /// The name as the authoritative servers answer, and the group's frontends.
    Read(Observed, Vec<String>),
    /// The name could not be read: why.
    Unread(String),
}

impl Shared {
    /// Read `group`'s DNS name for an adoption, within `timeout`; `None`
    /// when the licence ended meanwhile (the next holder adopts).
    pub(super) async fn dns_for_adoption(&self, group: &str, timeout: Duration) -> Option<DnsRead> {
        let Some(h) = self.strategies.get(group).and_then(|s| s.hybrid()) else {
            return Some(DnsRead::NoName);
        };
        let read = async {
            match self.licence.token() {
                Some(term) => self.licence.gated(&term, h.dns_current()).await,
                None => Some(h.dns_current().await),
            }
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(None) => None,
            Ok(Some(Ok(o))) => Some(DnsRead::Read(o, h.frontend_names())),
            Ok(Some(Err(e))) => Some(DnsRead::Unread(e.to_string())),
            Err(_) => Some(DnsRead::Unread(format!(
                "no answer within {}s",
                timeout.as_secs()
            ))),
        }
    }
}

/// Take into `ng` the DNS name written at an epoch above `above`: the
/// frontend it points at becomes the group's, at the name's epoch (a name
/// at no frontend of the group: pointing it at one is a decision above
/// the name's). Returns what was adopted, for the event; `None` when the
/// name is at `above` or below (the group decided since).
pub(super) fn adopt_dns_name(
    ng: &mut GroupState,
    o: &Observed,
    frontends: &[String],
    above: u64,
) -> Option<String> {
    if o.epoch <= above {
        return None;
    }
    if o.epoch > warden_proto::EPOCH_CEILING {
        // Forged or corrupt (see `adopt_fresh_groups`): not taken, and no
        // pointing can carry an epoch above it.
        return Some(format!(
            "the DNS name's marker holds epoch {}, {} below the largest there is: not adopted (forged or corrupt); \
             the zone refuses the group's pointings until the marker is deleted",
            o.epoch,
            u64::MAX - o.epoch
        ));
    }
    match o.site.as_ref().filter(|f| frontends.contains(f)) {
        Some(fe) => {
            ng.frontend = Some(fe.clone());
            ng.frontend_epoch = o.epoch;
            Some(format!(
                "the DNS name points at frontend {fe} (frontend layer, epoch {})",
                o.epoch
            ))
        }
        None => {
            ng.frontend_epoch = o.epoch + 1;
            Some(format!(
                "the DNS name points at no frontend of the group (frontend layer, epoch {}): the next pointing \
                 carries epoch {}",
                o.epoch,
                o.epoch + 1
            ))
        }
    }
}
