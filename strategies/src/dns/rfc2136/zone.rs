//! What the provider reads from and writes to the zone: the snapshot of
//! the managed names' address records and the group's marker
//! (`_warden.NAME TXT "warden epoch=E site=S"`), the reads that take it
//! from the primary (signed with the update key, answers checked), and the
//! UPDATE message with its prerequisites
//! (RFC 2136 §2.4) that make each update a compare-and-set.

use super::*;

/// The address records of one name, as read from the primary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct NameRecords {
    pub(super) a: Vec<Ipv4Addr>,
    pub(super) aaaa: Vec<Ipv6Addr>,
}

impl NameRecords {
    pub(super) fn holds(&self, v: &RecordValue) -> bool {
        self.a == v.v4.into_iter().collect::<Vec<_>>()
            && self.aaaa == v.v6.into_iter().collect::<Vec<_>>()
    }
    pub(super) fn value(&self) -> Option<RecordValue> {
        if self.a.len() > 1 || self.aaaa.len() > 1 || (self.a.is_empty() && self.aaaa.is_empty()) {
            return None;
        }
        Some(RecordValue {
            v4: self.a.first().copied(),
            v6: self.aaaa.first().copied(),
        })
    }
    pub(super) fn describe(&self) -> String {
        let all: Vec<String> = self
            .a
            .iter()
            .map(ToString::to_string)
            .chain(self.aaaa.iter().map(ToString::to_string))
            .collect();
        if all.is_empty() {
            "no address".into()
        } else {
            all.join(", ")
        }
    }
}

/// The group's marker record: which decision last wrote the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(super) epoch: Epoch,
    pub(super) site: String,
}

/// What the zone holds for the group (or what warden last wrote there).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Snapshot {
    pub(super) names: Vec<NameRecords>,
    /// The TXT records at the marker name as the server holds them (each
    /// record's strings unjoined: the prerequisite must name them byte for
    /// byte, or the server never finds the RRset it names).
    pub(super) marker_txt: Vec<TXT>,
}

impl Snapshot {
    /// The marker: of several (warden writes one; a hand edit may add
    /// more), the highest epoch. The server gives an RRset's records in any
    /// order, so the first would be a different one from read to read, and
    /// an older one would let an order through that the newer one refuses
    /// (the prerequisite names the whole RRset, so the server would not).
    pub(super) fn marker(&self) -> Option<Marker> {
        self.marker_txt
            .iter()
            .filter_map(marker_of)
            .max_by_key(|m| m.epoch)
    }
    pub(super) fn all_hold(&self, v: &RecordValue) -> bool {
        self.names.iter().all(|n| n.holds(v))
    }
}

/// The marker one TXT record holds. Its strings are read as one text (a
/// string cut at 255 bytes goes on in the next) and as words: the marker
/// written by hand unquoted (`TXT warden epoch=5 site=a` in nsupdate or a
/// zone file) is three strings. Of the two readings, the higher epoch
/// (the stricter fence).
pub(super) fn marker_of(t: &TXT) -> Option<Marker> {
    let strings: Vec<String> = t
        .txt_data
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    [strings.concat(), strings.join(" ")]
        .iter()
        .filter_map(|s| parse_marker(s))
        .max_by_key(|m| m.epoch)
}

pub(super) fn marker_text(epoch: Epoch, site: &str) -> String {
    format!("warden epoch={epoch} site={site}")
}

pub(crate) fn parse_marker(t: &str) -> Option<Marker> {
    let mut epoch = None;
    let mut site = None;
    let mut it = t.split_whitespace();
    if it.next()? != "warden" {
        return None;
    }
    for part in it {
        if let Some(e) = part.strip_prefix("epoch=") {
            epoch = e.parse().ok();
        } else if let Some(s) = part.strip_prefix("site=") {
            site = Some(s.to_string());
        }
    }
    Some(Marker {
        epoch: epoch?,
        site: site?,
    })
}

impl Rfc2136Provider {
    /// Read every managed name and the marker from the primary.
    pub(super) async fn read(&self) -> Result<Snapshot, StrategyError> {
        let mut snap = Snapshot::default();
        for (text, name) in &self.names {
            let mut recs = NameRecords::default();
            for rtype in [RecordType::A, RecordType::AAAA] {
                let r = self.ask(name, rtype).await?;
                for rec in &r.answers {
                    if rec.name != *name {
                        continue;
                    }
                    match &rec.data {
                        RData::A(a) => recs.a.push(a.0),
                        RData::AAAA(a) => recs.aaaa.push(a.0),
                        _ => {}
                    }
                }
            }
            recs.a.sort();
            recs.aaaa.sort();
            let _ = text;
            snap.names.push(recs);
        }
        let r = self.ask(&self.marker, RecordType::TXT).await?;
        for rec in &r.answers {
            // Only the marker's own name: a CNAME there brings the TXT of
            // its target along, which is no decision of this group.
            if rec.name != self.marker {
                continue;
            }
            if let RData::TXT(t) = &rec.data {
                snap.marker_txt.push(t.clone());
            }
        }
        Ok(snap)
    }

    pub(super) async fn ask(
        &self,
        name: &Name,
        rtype: RecordType,
    ) -> Result<hickory_net::proto::op::DnsResponse, StrategyError> {
        // Signed like the updates: what a read shows decides whether warden
        // writes, and whether it yields to a newer decision (the marker), so
        // an answer forged by anyone without the key must not be believed.
        let r = query::ask(
            self.server,
            name,
            rtype,
            Some(self.signer.clone()),
            self.timeout,
        )
        .await
        .map_err(|e| {
            let why = describe_net_error(&e);
            // The server refusing our key is not transient (as for an update);
            // an answer that does not check may be forged: try again later.
            if why.contains("server rejected our TSIG") {
                self.rejected(format!("reading {name} {rtype} refused: {why}"))
            } else {
                self.unreachable(why)
            }
        })?;
        match r.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            ResponseCode::NotAuth
            | ResponseCode::BADSIG
            | ResponseCode::BADKEY
            | ResponseCode::BADTIME => {
                return Err(self.rejected(format!(
                    "the server rejected our TSIG signature ({}) reading {name} {rtype} with key {}: check the key name, secret and algorithm ({}) against the server's key, and that both clocks agree",
                    r.metadata.response_code, self.key.name, self.key.algorithm
                )))
            }
            ResponseCode::ServFail => {
                return Err(self.unreachable(format!(
                    "SERVFAIL reading {name} {rtype}: the server cannot serve the zone right now"
                )))
            }
            ResponseCode::Refused => {
                return Err(self.rejected(format!(
                    "REFUSED reading {name} {rtype}: the server does not serve zone {} to us; check server and zone",
                    self.zone_text
                )))
            }
            other => {
                return Err(self.rejected(format!(
                    "answered {other} reading {name} {rtype}"
                )))
            }
        }
        if !r.metadata.authoritative {
            return Err(self.rejected(format!(
                "the answer for {name} is not authoritative (AA bit clear): {} is not the primary of zone {}",
                self.server, self.zone_text
            )));
        }
        Ok(r)
    }

    /// The zone is not one this server serves: its SOA, asked signed, is
    /// answered (authoritatively, the answer checked) without a SOA at the
    /// zone's own name — the name lies inside a zone of the server's.
    /// `None` when it is one, or when that cannot be told.
    pub(super) async fn zone_not_served(&self) -> Option<StrategyError> {
        let r = self.ask(&self.zone, RecordType::SOA).await.ok()?;
        let apex = r
            .answers
            .iter()
            .any(|rec| rec.name == self.zone && matches!(rec.data, RData::SOA(_)));
        let parent = r
            .authorities
            .iter()
            .find(|rec| matches!(rec.data, RData::SOA(_)))
            .map(|rec| rec.name.to_string());
        (!apex).then(|| {
            self.rejected(format!(
                "zone {} is not a zone this server serves (asked for its SOA, the server answered {}): set groups.{}.dns.zone to the zone's apex and groups.{}.dns.server to its primary",
                self.zone_text,
                parent.map_or("none".to_string(), |p| format!("from zone {}", p.trim_end_matches('.'))),
                self.group,
                self.group
            ))
        })
    }

    /// The UPDATE that moves every name from `from` to `to` at `epoch`.
    pub(super) fn update_message(
        &self,
        from: &Snapshot,
        to: &RecordValue,
        site: &str,
        epoch: Epoch,
    ) -> Message {
        let mut msg = Message::query();
        msg.metadata.op_code = OpCode::Update;
        msg.metadata.recursion_desired = false;
        let mut zone = Query::new();
        zone.set_name(self.zone.clone())
            .set_query_class(DNSClass::IN)
            .set_query_type(RecordType::SOA);
        msg.add_zone(zone);

        for ((_, name), recs) in self.names.iter().zip(&from.names) {
            prerequisite(
                &mut msg,
                name,
                RecordType::A,
                recs.a.iter().map(|a| RData::A(A(*a))).collect(),
            );
            prerequisite(
                &mut msg,
                name,
                RecordType::AAAA,
                recs.aaaa.iter().map(|a| RData::AAAA(AAAA(*a))).collect(),
            );
            for rtype in [RecordType::A, RecordType::AAAA] {
                let mut del = Record::update0(name.clone(), 0, rtype).into_record_of_rdata();
                del.dns_class = DNSClass::ANY;
                msg.add_update(del);
            }
            if let Some(a) = to.v4 {
                msg.add_update(Record::from_rdata(name.clone(), self.ttl, RData::A(A(a))));
            }
            if let Some(a) = to.v6 {
                msg.add_update(Record::from_rdata(
                    name.clone(),
                    self.ttl,
                    RData::AAAA(AAAA(a)),
                ));
            }
        }
        prerequisite(
            &mut msg,
            &self.marker,
            RecordType::TXT,
            from.marker_txt
                .iter()
                .map(|t| RData::TXT(t.clone()))
                .collect(),
        );
        let mut del =
            Record::update0(self.marker.clone(), 0, RecordType::TXT).into_record_of_rdata();
        del.dns_class = DNSClass::ANY;
        msg.add_update(del);
        msg.add_update(Record::from_rdata(
            self.marker.clone(),
            self.ttl,
            RData::TXT(TXT::new(vec![marker_text(epoch, site)])),
        ));
        msg
    }
}

/// RFC 2136 §2.4: "RRset exists (value dependent)" with `values`, or "RRset
/// does not exist" when `values` is empty.
pub(super) fn prerequisite(msg: &mut Message, name: &Name, rtype: RecordType, values: Vec<RData>) {
    if values.is_empty() {
        let mut r = Record::update0(name.clone(), 0, rtype).into_record_of_rdata();
        r.dns_class = DNSClass::NONE;
        msg.add_pre_requisite(r);
    } else {
        for v in values {
            msg.add_pre_requisite(Record::from_rdata(name.clone(), 0, v));
        }
    }
}
