//! Questions asked directly to one DNS server with hickory-net: no resolver,
//! no cache, the AA bit and the response code exposed. UDP first; TCP when the
//! answer is truncated. Also the UPDATE exchange of [`super::rfc2136`]
//! (signed, UDP with TCP fallback).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_net::client::Client;
use hickory_net::proto::op::{DnsResponse, Message};
use hickory_net::proto::rr::{DNSClass, Name, RData, RecordType, TSigner};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::{DnsHandle, FirstAnswer};
use hickory_net::{DnsMultiplexer, NetError};

use super::RecordValue;

/// An absolute DNS name from a configured hostname (with or without the trailing dot).
pub fn fqdn(name: &str) -> Result<Name, String> {
    let n = name.trim().trim_end_matches('.');
    Name::from_ascii(format!("{n}.")).map_err(|e| format!("{n:?} is not a valid DNS name: {e}"))
}

/// Which transport carried an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Send `msg` to `server` over one transport and return the first answer.
async fn exchange(
    server: SocketAddr,
    msg: Message,
    signer: Option<TSigner>,
    timeout: Duration,
    transport: Transport,
) -> Result<DnsResponse, NetError> {
    let provider = TokioRuntimeProvider::default();
    let client = match transport {
        Transport::Udp => {
            let stream = UdpClientStream::builder(server, provider)
                .with_timeout(Some(timeout))
                .with_signer(signer)
                .build();
            let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
            tokio::spawn(bg);
            client
        }
        Transport::Tcp => {
            let (connect, handle) = TcpClientStream::new(server, None, Some(timeout), provider);
            let stream = tokio::time::timeout(timeout, connect)
                .await
                .map_err(|_| NetError::Timeout)??;
            let mut mux = DnsMultiplexer::new(stream, handle).with_timeout(timeout);
            if let Some(s) = signer {
                mux = mux.with_signer(s);
            }
            let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(mux);
            tokio::spawn(bg);
            client
        }
    };
    // The background task ends when the client is dropped.
    tokio::time::timeout(
        timeout + Duration::from_millis(100),
        client.send(msg.into()).first_answer(),
    )
    .await
    .map_err(|_| NetError::Timeout)?
}

/// Send `msg` over UDP; repeat it over TCP when the answer is truncated or
/// UDP failed. Returns the answer and the transport that produced it.
pub async fn send(
    server: SocketAddr,
    msg: Message,
    signer: Option<TSigner>,
    timeout: Duration,
) -> Result<(DnsResponse, Transport), NetError> {
    match exchange(server, msg.clone(), signer.clone(), timeout, Transport::Udp).await {
        Ok(r) if !r.metadata.truncation => Ok((r, Transport::Udp)),
        Ok(_) | Err(NetError::Timeout) | Err(NetError::Io(_)) => {
            let r = exchange(server, msg, signer, timeout, Transport::Tcp).await?;
            Ok((r, Transport::Tcp))
        }
        Err(e) => Err(e),
    }
}

/// A query for `name`/`rtype` (recursion not desired), signed with
/// `signer` when given: then an answer is taken only when its own TSIG
/// signature checks (RFC 8945 §5.3: the MAC over our request's MAC and the
/// answer, and its time within the key's fudge), so an answer forged by
/// anyone without the key, or altered on the way, is an error, never a
/// record. (hickory signs and checks by itself only UPDATE, NOTIFY and zone
/// transfers, so a query is signed here and its answer checked here.)
pub async fn ask(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    signer: Option<TSigner>,
    timeout: Duration,
) -> Result<DnsResponse, NetError> {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = false;
    let mut q = hickory_net::proto::op::Query::query(name.clone(), rtype);
    q.set_query_class(DNSClass::IN);
    msg.add_query(q);
    let Some(signer) = signer else {
        return Ok(send(server, msg, None, timeout).await?.0);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut verifier = msg
        .finalize(&signer, now)?
        .ok_or_else(|| NetError::from("the TSIG key gave no verifier for the answer"))?;
    let (answer, _) = send(server, msg, None, timeout).await?;
    Ok(verifier.verify(answer.as_buffer())?)
}

/// The address records of one name at one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrAnswer {
    /// The AA bit: the server answered from its own zone.
    pub authoritative: bool,
    /// The first A and first AAAA record (absent when the name has none).
    pub value: RecordValue,
    /// More than one A (or AAAA) record: a round robin warden did not write.
    pub extra_v4: bool,
    pub extra_v6: bool,
    /// Every address seen, for messages.
    pub all: Vec<String>,
    /// The highest TTL of its address records: how long a resolver may
    /// keep the answer.
    pub ttl: Option<u32>,
}

/// Ask `server` for the A (if `v4`) and AAAA (if `v6`) records of `name`.
/// NXDOMAIN and an empty answer give an empty value; other response codes
/// and transport failures are errors (one line, for drift and events).
pub async fn address_records(
    server: SocketAddr,
    name: &str,
    v4: bool,
    v6: bool,
    timeout: Duration,
) -> Result<AddrAnswer, String> {
    let n = fqdn(name)?;
    let mut out = AddrAnswer {
        authoritative: true,
        value: RecordValue::default(),
        extra_v4: false,
        extra_v6: false,
        all: Vec::new(),
        ttl: None,
    };
    for (want, rtype) in [(v4, RecordType::A), (v6, RecordType::AAAA)] {
        if !want {
            continue;
        }
        let r = ask(server, &n, rtype, None, timeout)
            .await
            .map_err(|e| describe_net_error(&e))?;
        use hickory_net::proto::op::ResponseCode;
        match r.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            ResponseCode::Refused => {
                return Err(format!(
                    "REFUSED the query for {name}: the server does not serve this zone to us"
                ))
            }
            ResponseCode::ServFail => {
                return Err(format!(
                    "SERVFAIL for {name}: the server cannot load the zone"
                ))
            }
            other => return Err(format!("answered {other} for {name} {rtype}")),
        }
        out.authoritative &= r.metadata.authoritative;
        for rec in &r.answers {
            if rec.name != n {
                continue;
            }
            match &rec.data {
                RData::A(a) => {
                    out.all.push(a.0.to_string());
                    out.ttl = out.ttl.max(Some(rec.ttl));
                    if out.value.v4.is_some() {
                        out.extra_v4 = true;
                    } else {
                        out.value.v4 = Some(a.0);
                    }
                }
                RData::AAAA(a) => {
                    out.all.push(a.0.to_string());
                    out.ttl = out.ttl.max(Some(rec.ttl));
                    if out.value.v6.is_some() {
                        out.extra_v6 = true;
                    } else {
                        out.value.v6 = Some(a.0);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// One line for a transport or protocol failure; never includes key material.
pub fn describe_net_error(e: &NetError) -> String {
    match e {
        NetError::Timeout => "no answer (timed out)".into(),
        NetError::Io(io) => format!("network error: {io}"),
        NetError::Proto(p) => {
            let text = p.to_string();
            // BIND and Knot answer an unauthenticated update with NOTAUTH and
            // an unsigned TSIG; hickory then fails the response verification
            // with a message about "truncated HMACs".
            if text.contains("HMAC") {
                "the server rejected our TSIG signature (BADKEY/BADSIG/BADTIME): check the key name, secret and algorithm against the server's key, and that both clocks agree".into()
            } else if text.contains("missing tsig") {
                // Never the answer of a server that checked our signature
                // (it signs its answer, even a refusal): forged, or from
                // something that is not the server.
                "the answer to our TSIG-signed request carried no TSIG signature: not the server's answer to it (forged, or another program on that address); nothing in it is believed".into()
            } else if text.contains("TSIG")
                || text.contains("Tsig")
                || text.contains("tsig")
                // a MAC of the right length that does not check: signed
                // with another secret, or altered on the way
                || text.contains("hmac validation")
            {
                format!("the answer's TSIG signature did not check ({text}): signed with another key, altered, or forged; nothing in it is believed")
            } else {
                format!("protocol error: {text}")
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_net::proto::ProtoError;

    fn said(text: &str) -> String {
        describe_net_error(&NetError::Proto(ProtoError::from(text.to_string())))
    }

    /// What hickory says when the answer to a signed request does not check
    /// (its words as of hickory-proto 0.26): only the server's own refusal
    /// (an unsigned TSIG, "truncated HMACs") is said as that; an answer
    /// signed with another key or altered is said as not checking.
    #[test]
    fn tsig_failures_of_the_answer_are_told_apart_from_the_servers_refusal() {
        let refusal = said("Please file an issue with https://github.com/hickory-dns/hickory-dns to support truncated HMACs with TSIG");
        assert!(refusal.contains("server rejected our TSIG"), "{refusal}");
        for text in [
            "hmac validation failure",
            "Tsig key wrong key error",
            "tsig validation error: outdated response",
            "TSIG signature record not found",
        ] {
            let why = said(text);
            assert!(
                why.contains("TSIG signature did not check") && !why.contains("rejected our"),
                "{text}: {why}"
            );
        }
        let missing = said("missing tsig from response that must be authenticated");
        assert!(missing.contains("carried no TSIG"), "{missing}");
    }
}
