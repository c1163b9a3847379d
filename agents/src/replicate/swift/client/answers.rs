//! What Swift's answers say: the entries of a JSON listing (an SLO listed
//! by its `slo_etag`, a symlink by its target: [`ObjectEntry::hash`]), an
//! object's and a container's headers, and Swift's two time formats.

use super::*;

/// One entry of a JSON container listing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ObjectEntry {
    pub name: String,
    /// The ETag: the MD5 of the content for plain objects and DLO
    /// manifests (their own body, usually empty), and for an SLO its
    /// `slo_etag` as a GET shows it (set by [`SwiftClient::list_objects`];
    /// the listing's own `hash` of an SLO is the MD5 of its stored manifest
    /// and differs per cluster). A symlink's is its own ETag (the zero-byte
    /// MD5, as any empty object's) with its target and, for a static link,
    /// the target's ETag: `ETAG;symlink=CONTAINER/OBJECT[;etag=E]` (the
    /// target as `/v1/ACCOUNT/…` when in another account), so a link
    /// retargeted, or an empty object turned into a link, is a new version.
    pub hash: String,
    /// The size (an SLO's: the sum of its segments).
    pub bytes: u64,
    #[serde(default)]
    pub content_type: String,
    /// The object's X-Timestamp as `YYYY-MM-DDTHH:MM:SS.ffffff` (UTC).
    pub last_modified: String,
    /// Set for a static large object (Swift ≥ 2.23 with `listing_formats`):
    /// its ETag, quoted.
    #[serde(default)]
    pub slo_etag: Option<String>,
    /// Set for a symlink: `/v1/ACCOUNT/CONTAINER/OBJECT` of its target.
    #[serde(default)]
    pub symlink_path: Option<String>,
    /// Set for a static symlink: its target's ETag.
    #[serde(default)]
    pub symlink_etag: Option<String>,
}

impl ObjectEntry {
    /// `last_modified` in microseconds since the epoch (0 if unreadable).
    pub fn timestamp_us(&self) -> u64 {
        parse_listing_time(&self.last_modified).unwrap_or(0)
    }

    /// Copied after the plain objects of a round: an SLO's segments and a
    /// static symlink's target must be at the destination first.
    pub fn needs_others(&self) -> bool {
        self.slo_etag.is_some() || self.symlink_path.is_some()
    }

    /// An SLO's `hash` becomes its `slo_etag`, a symlink's names its
    /// target (see [`ObjectEntry::hash`]); `account` is the listed one.
    pub(super) fn normalise(&mut self, account: &str) {
        if let Some(etag) = &self.slo_etag {
            let etag = etag.trim().trim_matches('"');
            if !etag.is_empty() {
                self.hash = etag.to_string();
            }
        }
        if let Some(path) = &self.symlink_path {
            let own = format!("/v1/{account}/");
            let target = path.strip_prefix(&own).unwrap_or(path);
            self.hash = crate::replicate::swift::large::symlink_hash(
                &self.hash,
                target,
                self.symlink_etag.as_deref(),
            );
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ContainerEntry {
    pub(super) name: String,
}

/// An object's headers, as HEAD/GET return them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub etag: String,
    pub content_type: String,
    pub length: u64,
    /// X-Timestamp in microseconds since the epoch.
    pub timestamp_us: u64,
    /// `x-object-meta-*` (lower-case names, values as sent), plus the
    /// other headers a client sets on an object and Swift keeps with it
    /// ([`OBJECT_HEADERS`]) when set.
    pub meta: BTreeMap<String, String>,
}

impl ObjectInfo {
    /// When this version was first written anywhere: warden's origin
    /// timestamp header if a replicator wrote it here, else its own X-Timestamp.
    pub fn origin_us(&self) -> u64 {
        self.meta
            .get(crate::replicate::swift::ORIGIN_TS_HEADER)
            .and_then(|v| parse_x_timestamp(v))
            .unwrap_or(self.timestamp_us)
    }
}

/// The headers besides `x-object-meta-*` that a client sets on an object
/// and Swift stores and answers with it: the object server's default
/// `allowed_headers` (Swift 2.30), less the two that make an object a large
/// object (`x-object-manifest`, `x-static-large-object`: written by
/// `large.rs` as what they are). A copy without them is not the object the
/// client wrote: a `Cache-Control`, `Content-Language` or `Expires` set for
/// a web page served out of Swift would be gone at the other site.
pub const OBJECT_HEADERS: [&str; 7] = [
    "content-disposition",
    "content-encoding",
    "x-delete-at",
    "cache-control",
    "content-language",
    "expires",
    "x-robots-tag",
];

/// A container's headers, as HEAD returns them (lower-case names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    pub headers: BTreeMap<String, String>,
}

impl ContainerInfo {
    /// The headers replicated between sites: `x-container-meta-*`,
    /// `x-container-read`, `x-container-write`; never the `swift` plan's
    /// fence ([`ACTIVE_HEADER`](crate::replicate::swift::fence::ACTIVE_HEADER)),
    /// which is each site's own.
    pub fn replicated(&self) -> BTreeMap<String, String> {
        self.headers
            .iter()
            .filter(|(k, _)| is_replicated_container_header(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

fn is_replicated_container_header(name: &str) -> bool {
    name.starts_with("x-container-meta-")
        && !name.starts_with("x-container-meta-quota-")
        && !name.starts_with("x-container-meta-temp-url-")
        && name != crate::replicate::swift::fence::ACTIVE_HEADER
        || name == "x-container-read"
        || name == "x-container-write"
}

/// A header's value as text: UTF-8 as Swift sends it. Swift keeps a
/// metadata value's bytes as the client sent them (`X-Object-Meta-Title:
/// Grüße` is UTF-8 on the wire); `HeaderValue::to_str` takes visible ASCII
/// only and would drop such a header from every copy.
fn text(v: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(v.as_bytes()).ok()
}

pub(super) fn header_map(h: &HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), text(v)?.to_string())))
        .collect()
}

pub(super) fn object_info(h: &HeaderMap) -> ObjectInfo {
    let get = |n: &str| h.get(n).and_then(text).unwrap_or_default().to_string();
    let meta = h
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            k.starts_with("x-object-meta-") || OBJECT_HEADERS.contains(&k)
        })
        .filter_map(|(k, v)| Some((k.as_str().to_string(), text(v)?.to_string())))
        .collect();
    ObjectInfo {
        etag: get("etag").trim_matches('"').to_string(),
        content_type: get("content-type"),
        length: get("content-length").parse().unwrap_or(0),
        timestamp_us: parse_x_timestamp(&get("x-timestamp")).unwrap_or(0),
        meta,
    }
}

/// `1795307425.60651` (Swift's X-Timestamp; an `_offset` suffix is ignored) → µs;
/// `None` past what µs in a `u64` hold (also read from
/// `X-Object-Meta-Warden-Ts`, which any user of the account can set).
pub fn parse_x_timestamp(s: &str) -> Option<u64> {
    let s = s.split('_').next()?.trim();
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: u64 = secs.parse().ok()?;
    let mut frac: String = frac.chars().take(6).collect();
    if !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while frac.len() < 6 {
        frac.push('0');
    }
    secs.checked_mul(1_000_000)?
        .checked_add(frac.parse::<u64>().ok()?)
}

/// µs → Swift's X-Timestamp form with 5 decimals (`1795307425.60651`).
pub fn format_x_timestamp(us: u64) -> String {
    format!("{}.{:05}", us / 1_000_000, (us % 1_000_000) / 10)
}

/// A listing's `2026-11-22T00:30:25.606510` (UTC, no zone) → µs since the
/// epoch; `None` for anything else or a time before 1970.
pub fn parse_listing_time(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let us = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_micros();
    u64::try_from(us).ok()
}
