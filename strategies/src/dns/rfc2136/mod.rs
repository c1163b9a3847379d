//! The `rfc2136` provider: DNS UPDATE (RFC 2136) signed with TSIG (RFC 8945)
//! sent to the zone's primary server, UDP first and TCP when needed.
//!
//! Compare-and-set: every update carries prerequisites (RFC 2136 §2.4) that
//! each name's A and AAAA RRsets still hold what warden last wrote, and that
//! the group's marker record `_warden.NAME TXT "warden epoch=E site=S"` is
//! unchanged. A stale orchestrator's update is therefore refused by the DNS
//! server itself (NXRRSET/YXRRSET); warden then reads the zone once and
//! reports [`StrategyError::StaleEpoch`] (a newer decision wrote the marker)
//! or [`StrategyError::Conflict`] (the records were changed outside warden),
//! never retrying blindly. A NOERROR is confirmed by reading the zone back
//! (an address added beside a CNAME is dropped by the server without an
//! error): only a zone that holds the addresses and this decision's marker
//! is success. The reads are signed with the same key and their
//! answers' signatures checked: a forged answer could otherwise stop warden
//! from writing (records shown as already right) or make it yield to a
//! decision nobody made (a marker with a higher epoch). A hand edit is adopted on the next call (the
//! marker shows that no newer decision exists), so reconciliation can undo it.
//! The provider remembers the highest epoch it wrote into the marker: an
//! older order is refused even when the zone has lost the marker (a zone
//! reloaded from a copy without it) and the server's prerequisites would
//! let it through.
//!
//! The TSIG key (parsing the credentials, signing) is in `tsig.rs`; the
//! zone snapshot and marker, the reads and the UPDATE in `zone.rs`; this
//! file has the provider and its publish and observe.

mod tsig;
mod zone;

pub use tsig::TsigKey;
/// For the fuzz tests (`crate::fuzz`).
#[cfg(test)]
pub(crate) use zone::parse_marker;
use zone::{NameRecords, Snapshot};

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use hickory_net::proto::op::{Message, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_net::proto::rr::rdata::{A, AAAA, TXT};
use hickory_net::proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};
use tracing::{info, warn};
use warden_config::{parse_dns_server, DnsScheme, Secret};

use super::query::{self, describe_net_error, fqdn};
use super::{names_of, DnsProvider, ProviderView, RecordValue};
use crate::{Epoch, StrategyError};

/// The rfc2136 provider of one group.
pub struct Rfc2136Provider {
    group: String,
    /// `DNS server ADDR (zone Z)`, the element named in errors.
    element: String,
    server: SocketAddr,
    zone: Name,
    zone_text: String,
    /// Managed names (text, absolute name), the main one first.
    names: Vec<(String, Name)>,
    marker: Name,
    ttl: u32,
    key: TsigKey,
    signer: TSigner,
    timeout: Duration,
    /// What warden last wrote (or adopted); `None`: read the zone first.
    last: Mutex<Option<Snapshot>>,
    /// The highest epoch this provider's updates wrote into the marker.
    /// `last` is dropped whenever the zone may differ from it, and the zone
    /// itself may lose the marker (restored from a copy, reloaded from a
    /// file without it): an order older than this is refused even then.
    written: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Rfc2136Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rfc2136Provider")
            .field("group", &self.group)
            .field("server", &self.server)
            .field("zone", &self.zone_text)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Rfc2136Provider {
    /// Build from `[groups.GROUP.dns]` (provider "rfc2136"), loading the TSIG key.
    pub fn from_config(group: &str, dns: &DnsScheme) -> Result<Rfc2136Provider, StrategyError> {
        let cfg = |m: String| StrategyError::Config(format!("groups.{group}.dns: {m}"));
        let server = dns
            .server
            .as_deref()
            .ok_or_else(|| cfg("rfc2136 needs server".into()))?;
        let server = parse_dns_server(server).map_err(|e| cfg(format!("server: {e}")))?;
        let zone = dns
            .zone
            .as_deref()
            .ok_or_else(|| cfg("rfc2136 needs zone".into()))?;
        let cred = dns
            .credentials
            .as_ref()
            .ok_or_else(|| cfg("rfc2136 needs credentials (the TSIG key)".into()))?;
        let secret = Secret::load(&format!("groups.{group}.dns.credentials"), cred)
            .map_err(|e| StrategyError::Config(e.to_string()))?;
        let key = TsigKey::parse(
            secret.expose(),
            dns.key_name.as_deref(),
            dns.algorithm.as_deref(),
        )
        .map_err(|e| cfg(format!("credentials: {e}")))?;
        let ttl = u32::try_from(dns.ttl.as_secs().max(1)).unwrap_or(u32::MAX);
        Rfc2136Provider::new(group, server, zone, &names_of(dns), ttl, key, dns.timeout)
    }

    /// A provider for `names` in `zone` at the primary `server`.
    pub fn new(
        group: &str,
        server: SocketAddr,
        zone: &str,
        names: &[String],
        ttl: u32,
        key: TsigKey,
        timeout: Duration,
    ) -> Result<Rfc2136Provider, StrategyError> {
        let cfg = |m: String| StrategyError::Config(format!("groups.{group}.dns: {m}"));
        let zone_name = fqdn(zone).map_err(|e| cfg(format!("zone: {e}")))?;
        let mut parsed = Vec::new();
        for n in names {
            let name = fqdn(n).map_err(|e| cfg(format!("name: {e}")))?;
            if !zone_name.zone_of(&name) {
                return Err(cfg(format!(
                    "{n:?} is not inside zone {zone:?}; the record must belong to the zone being updated"
                )));
            }
            // DNS names compare without case: an alias that is the name in
            // other case is the same record, named once (BIND refuses an
            // update whose prerequisites name an RRset twice).
            if parsed.iter().any(|(_, p)| *p == name) {
                continue;
            }
            parsed.push((n.clone(), name));
        }
        let main = parsed
            .first()
            .map(|(n, _)| n.clone())
            .ok_or_else(|| cfg("no name to manage".into()))?;
        let marker = fqdn(&format!("_warden.{main}")).map_err(|e| cfg(format!("name: {e}")))?;
        let signer = key.signer().map_err(cfg)?;
        Ok(Rfc2136Provider {
            group: group.to_string(),
            element: format!("DNS server {server} (zone {})", zone.trim_end_matches('.')),
            server,
            zone: zone_name,
            zone_text: zone.trim_end_matches('.').to_string(),
            names: parsed,
            marker,
            ttl,
            key,
            signer,
            timeout,
            last: Mutex::new(None),
            written: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// An order for `site` at `epoch` where the marker names `m`: another
    /// site at the same epoch is a conflicting decision (a second writer at
    /// an epoch that was already decided: every move, a `dns` group's
    /// failover as a `hybrid` group's move to another frontend, has an
    /// epoch of its own).
    fn conflicts(&self, m: &zone::Marker, site: &str, epoch: Epoch) -> Option<StrategyError> {
        (m.epoch == epoch && m.site != site).then(|| StrategyError::EpochTaken {
            element: self.element.clone(),
            epoch,
            reason: format!(
                "conflicting decision for epoch {epoch}: the marker {} says group {} was routed to {:?} at this epoch, refused {site:?}",
                self.marker, self.group, m.site
            ),
        })
    }

    fn last(&self) -> Option<Snapshot> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// An update of this provider holds the marker at `epoch`.
    fn wrote(&self, epoch: Epoch) {
        self.written
            .fetch_max(epoch, std::sync::atomic::Ordering::Relaxed);
    }

    fn set_last(&self, s: Option<Snapshot>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// After a NOERROR: read the zone back and take the update as done only
    /// when every name holds `value` and the marker is this decision's.
    /// A server's NOERROR is not the zone holding the route: an A record
    /// added beside a CNAME is ignored without an error (RFC 2136
    /// §3.4.2.2) while the marker is written, and a server may answer for
    /// a zone it does not apply updates to.
    async fn confirm(
        &self,
        site: &str,
        value: &RecordValue,
        epoch: Epoch,
        transport: query::Transport,
    ) -> Result<(), StrategyError> {
        self.set_last(None);
        let now = self.read().await.map_err(|e| match e {
            StrategyError::Unreachable { element, reason } => StrategyError::Unreachable {
                element,
                reason: format!(
                    "the update was answered NOERROR but the zone could not be read back to confirm it: {reason}"
                ),
            },
            other => other,
        })?;
        let marker = now.marker();
        if let Some(m) = marker.as_ref().filter(|m| m.epoch > epoch) {
            // Applied, then overwritten by a newer decision before the read.
            warn!(group = %self.group, server = %self.server, sent = epoch, seen = m.epoch, "DNS update superseded at once by a newer decision");
            return Err(StrategyError::StaleEpoch {
                element: format!("{} (read back after the update)", self.element),
                sent: epoch,
                seen: m.epoch,
            });
        }
        let ours = marker
            .as_ref()
            .is_some_and(|m| m.epoch == epoch && m.site == site);
        if ours && now.all_hold(value) {
            info!(group = %self.group, server = %self.server, ?transport, names = self.names.len(), to = %value, epoch, "DNS update applied (read back)");
            self.set_last(Some(now));
            return Ok(());
        }
        let mut wrong: Vec<String> = self
            .names
            .iter()
            .zip(&now.names)
            .filter(|(_, recs)| !recs.holds(value))
            .map(|((text, _), recs)| format!("{text} holds {}", recs.describe()))
            .collect();
        if !ours {
            wrong.push(format!(
                "the marker {} holds {}",
                self.marker,
                marker.map_or("no warden marker".to_string(), |m| format!(
                    "epoch {} site {}",
                    m.epoch, m.site
                ))
            ));
        }
        warn!(group = %self.group, server = %self.server, epoch, to = %value, "DNS update answered NOERROR but not applied");
        Err(self.rejected(format!(
            "the server answered NOERROR to the update to {value} (site {site}, epoch {epoch}) but the zone does not hold it: {}; a CNAME or other record at the name that keeps an address from being added, or a server that does not apply updates to zone {} (a secondary, a zone being reloaded)?",
            wrong.join("; "),
            self.zone_text
        )))
    }

    fn unreachable(&self, reason: String) -> StrategyError {
        StrategyError::Unreachable {
            element: self.element.clone(),
            reason,
        }
    }

    fn rejected(&self, reason: String) -> StrategyError {
        StrategyError::Rejected {
            element: self.element.clone(),
            reason,
        }
    }
}

#[async_trait]
impl DnsProvider for Rfc2136Provider {
    fn kind(&self) -> &'static str {
        "rfc2136"
    }

    async fn publish(
        &self,
        site: &str,
        value: &RecordValue,
        epoch: Epoch,
    ) -> Result<(), StrategyError> {
        let written = self.written.load(std::sync::atomic::Ordering::Relaxed);
        if epoch < written {
            return Err(StrategyError::StaleEpoch {
                element: format!("{} (as last written by this orchestrator)", self.element),
                sent: epoch,
                seen: written,
            });
        }
        let from = match self.last() {
            Some(s) => s,
            None => {
                let s = self.read().await?;
                self.set_last(Some(s.clone()));
                s
            }
        };
        if let Some(m) = from.marker() {
            if m.epoch > epoch {
                return Err(StrategyError::StaleEpoch {
                    element: self.element.clone(),
                    sent: epoch,
                    seen: m.epoch,
                });
            }
            if let Some(e) = self.conflicts(&m, site, epoch) {
                return Err(e);
            }
        }
        // Always send (even when warden believes the zone already holds the
        // target): only the server's prerequisite check can tell a stale
        // belief from the truth, and a repeated update is harmless.
        let msg = self.update_message(&from, value, site, epoch);
        // The zone was read (perhaps for long): the caller may no longer act.
        crate::gate::check(&self.element)?;
        let sent = query::send(self.server, msg, Some(self.signer.clone()), self.timeout).await;
        let (resp, transport) = match sent {
            Ok(r) => r,
            Err(e) => {
                let why = describe_net_error(&e);
                // The server refusing our signature is not transient: the
                // key must be fixed. An answer whose own signature does not
                // check is not the server's word (forged, altered): the
                // update may or may not have been applied, and the next try
                // may reach the server.
                if why.contains("carried no TSIG") {
                    // Knot answers an update of a zone it does not serve
                    // unsigned: not believed, but the zone can be asked
                    // (signed) whether it is one of this server's.
                    if let Some(e) = self.zone_not_served().await {
                        return Err(e);
                    }
                }
                return Err(if why.contains("server rejected our TSIG") {
                    self.rejected(format!("update of {} refused: {why}", self.names[0].0))
                } else {
                    // The update may or may not have been applied: read again next time.
                    self.set_last(None);
                    self.unreachable(why)
                });
            }
        };
        let code = resp.metadata.response_code;
        match code {
            ResponseCode::NoError => {
                // The marker may now hold `epoch`: older orders are refused
                // from here on, whatever the read-back shows.
                self.wrote(epoch);
                self.confirm(site, value, epoch, transport).await
            }
            ResponseCode::NXRRSet
            | ResponseCode::YXRRSet
            | ResponseCode::NXDomain
            | ResponseCode::YXDomain => {
                // The server refused the compare-and-set. Find out why, once.
                self.set_last(None);
                let now = self.read().await?;
                if let Some(m) = now.marker() {
                    if m.epoch == epoch && m.site == site && now.all_hold(value) {
                        // Our own earlier update (a retry after a lost answer).
                        self.set_last(Some(now));
                        self.wrote(epoch);
                        return Ok(());
                    }
                    if m.epoch > epoch {
                        warn!(group = %self.group, server = %self.server, sent = epoch, seen = m.epoch, "DNS update refused: a newer decision owns the record");
                        return Err(StrategyError::StaleEpoch {
                            element: format!("{} (prerequisite {code})", self.element),
                            sent: epoch,
                            seen: m.epoch,
                        });
                    }
                    if let Some(e) = self.conflicts(&m, site, epoch) {
                        warn!(group = %self.group, server = %self.server, epoch, routed = %m.site, refused = site, "DNS update refused: another decision of the same epoch owns the record");
                        return Err(e);
                    }
                }
                let wrote: Vec<String> = from.names.iter().map(NameRecords::describe).collect();
                let holds: Vec<String> = now.names.iter().map(NameRecords::describe).collect();
                let same_marker = now.marker() == from.marker();
                if same_marker {
                    // No newer decision wrote the marker: a hand edit. Adopt
                    // what the zone holds so the next call (reconcile) can set it right.
                    self.set_last(Some(now));
                }
                Err(StrategyError::Conflict {
                    element: self.element.clone(),
                    reason: format!(
                        "the compare-and-set prerequisite failed ({code}): {} holds [{}] but warden last wrote [{}]{}; not retried",
                        self.names[0].0,
                        holds.join("; "),
                        wrote.join("; "),
                        if same_marker {
                            " (changed outside warden; the next reconcile will restore it)".to_string()
                        } else {
                            format!(
                                " and the marker {} changed (another writer); check who else updates zone {}",
                                self.marker, self.zone_text
                            )
                        }
                    ),
                })
            }
            // NOTAUTH in an answer that checked, with no TSIG error in
            // it: the server took our key but does not serve the zone
            // named (RFC 2136 §3.1.2) — its name, or the server, is wrong.
            ResponseCode::NotAuth
                if resp
                    .signature()
                    .is_some_and(|s| s.data.error.is_none()) =>
            {
                Err(self.rejected(format!(
                    "NOTAUTH: the server accepted key {} but is not authoritative for zone {} (RFC 2136 §3.1.2): check that groups.{}.dns.zone names a zone this server serves (the zone's apex, not a name inside it) and that groups.{}.dns.server is that zone's primary",
                    self.key.name, self.zone_text, self.group, self.group
                )))
            }
            ResponseCode::NotAuth
            | ResponseCode::BADSIG
            | ResponseCode::BADKEY
            | ResponseCode::BADTIME => Err(self.rejected(format!(
                "the server rejected our TSIG signature ({code}) with key {}: check the key name, secret and algorithm ({}) against the server's key, and that both clocks agree",
                self.key.name, self.key.algorithm
            ))),
            ResponseCode::Refused => Err(self.rejected(format!(
                "REFUSED the update: the server does not let key {} change {} in zone {} from this address (its update policy, or — BIND checks it for updates too — its allow-query list)",
                self.key.name, self.names[0].0, self.zone_text
            ))),
            ResponseCode::NotZone => Err(self.rejected(format!(
                "NOTZONE: {} is not in zone {} at this server",
                self.names[0].0, self.zone_text
            ))),
            ResponseCode::ServFail => {
                self.set_last(None);
                Err(self.unreachable(
                    "SERVFAIL: the server could not apply the update (retrying)".into(),
                ))
            }
            other => Err(self.rejected(format!("the server answered {other} to the update"))),
        }
    }

    /// The records last written may have been changed by other leaders
    /// since: read the zone again before the next update (its
    /// compare-and-set would otherwise fail on them and the switch with it).
    fn term_began(&self) {
        self.set_last(None);
    }

    fn ttl(&self) -> Option<u32> {
        Some(self.ttl)
    }

    async fn observe(&self) -> Result<Option<ProviderView>, StrategyError> {
        let snap = self.read().await?;
        let mut drift = Vec::new();
        let main = snap.names.first().and_then(NameRecords::value);
        for ((text, _), recs) in self.names.iter().zip(&snap.names) {
            if recs.value() != main || recs.value().is_none() {
                drift.push(format!(
                    "{text} at {} holds {}",
                    self.server,
                    recs.describe()
                ));
            }
        }
        let marker = snap.marker();
        if marker.is_none() && !snap.marker_txt.is_empty() {
            drift.push(format!("{} holds an unreadable marker", self.marker));
        }
        Ok(Some(ProviderView {
            value: main,
            epoch: marker.as_ref().map_or(0, |m| m.epoch),
            site: marker.map(|m| m.site),
            drift,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::zone::{marker_text, Marker};
    use super::*;

    const B64: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM0NQ==";

    #[test]
    fn parses_every_key_form() {
        let bind =
            format!("key \"drkey\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{B64}\";\n}};\n");
        let k = TsigKey::parse(&bind, None, None).unwrap();
        assert_eq!(
            (k.name.as_str(), k.algorithm.as_str()),
            ("drkey", "hmac-sha256")
        );
        let knot = format!("# hmac-sha512:k2:{B64}\nkey:\n  - id: k2\n    algorithm: hmac-sha512\n    secret: {B64}\n");
        let k = TsigKey::parse(&knot, None, None).unwrap();
        assert_eq!(
            (k.name.as_str(), k.algorithm.as_str()),
            ("k2", "hmac-sha512")
        );
        let k = TsigKey::parse(&format!("hmac-sha384:k3:{B64}"), None, None).unwrap();
        assert_eq!(
            (k.name.as_str(), k.algorithm.as_str()),
            ("k3", "hmac-sha384")
        );
        let k = TsigKey::parse(B64, Some("k4"), None).unwrap();
        assert_eq!(
            (k.name.as_str(), k.algorithm.as_str()),
            ("k4", "hmac-sha256")
        );
        assert!(k.signer().is_ok());
    }

    /// A BIND key whose name holds a field's word (tsig-keygen takes any
    /// name): the fields are the key's statements, not the first place
    /// the word appears. "tsig-secret" was refused as "not valid base64";
    /// "algorithm", its secret given first, was refused with the secret
    /// quoted in the error as the algorithm.
    #[test]
    fn a_bind_key_named_after_its_fields_parses() {
        for (name, alg, text) in [
            (
                "tsig-secret",
                "hmac-sha256",
                format!(
                    "key \"tsig-secret\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{B64}\";\n}};\n"
                ),
            ),
            (
                "algorithm",
                "hmac-sha512",
                format!("key \"algorithm\" {{ secret \"{B64}\"; algorithm hmac-sha512; }};"),
            ),
        ] {
            let k = TsigKey::parse(&text, None, None).unwrap_or_else(|e| {
                panic!(
                    "{name}: {e} (the secret quoted: {})",
                    e.to_ascii_lowercase()
                        .contains(&B64[..16].to_ascii_lowercase())
                )
            });
            assert_eq!((k.name.as_str(), k.algorithm.as_str()), (name, alg));
            assert!(k.signer().is_ok());
        }
    }

    #[test]
    fn bad_keys_say_what_is_wrong_without_the_secret() {
        for (text, want) in [
            (B64.to_string(), "set key_name"),
            (format!("hmac-md5:k:{B64}"), "not supported"),
            (
                "hmac-sha256:k:not*base64*at*all".to_string(),
                "not valid base64",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; };".to_string(),
                "no secret",
            ),
        ] {
            let e = TsigKey::parse(&text, None, None).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains(B64) && !e.contains("not*base64"), "{e}");
        }
        let k = TsigKey::parse(B64, Some("k"), None).unwrap();
        assert!(!format!("{k:?}").contains(B64));
    }

    /// Two markers in the RRset (a hand edit added one): whatever order
    /// the server gives them in, the newer decision is the marker.
    #[test]
    fn of_several_markers_the_highest_epoch_is_the_marker() {
        for txt in [
            vec![marker_text(5, "a"), marker_text(9, "b")],
            vec![marker_text(9, "b"), marker_text(5, "a")],
            vec![
                "v=spf1 -all".into(),
                marker_text(9, "b"),
                marker_text(5, "a"),
            ],
        ] {
            let snap = zone::Snapshot {
                names: vec![],
                marker_txt: txt.into_iter().map(|t| TXT::new(vec![t])).collect(),
            };
            assert_eq!(
                snap.marker(),
                Some(Marker {
                    epoch: 9,
                    site: "b".into()
                })
            );
        }
    }

    #[test]
    fn marker_round_trip() {
        let m = parse_marker(&marker_text(7, "b")).unwrap();
        assert_eq!(
            m,
            Marker {
                epoch: 7,
                site: "b".into()
            }
        );
        assert_eq!(parse_marker("v=spf1 -all"), None);
    }
}
