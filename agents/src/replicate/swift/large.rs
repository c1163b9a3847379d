//! What an object is besides plain data, and how it is written again at
//! the other cluster as itself: a static large object (SLO) manifest, a
//! dynamic large object (DLO) manifest, a symlink. Read with
//! [`READ_AS_STORED`] a GET answers the manifest or link itself, never the
//! content it stands for (checked against Swift 2.30):
//!
//! - SLO (`X-Static-Large-Object: True`): the body is the manifest in the
//!   PUT format (`format=raw`: `path`, `etag`, `size_bytes`, `range`, or
//!   inline `data`); the stored form (`name`, `hash`, `bytes`, `sub_slo`),
//!   which a Swift without `format=raw` answers, is converted. It is
//!   written with `?multipart-manifest=put`: Swift checks every segment
//!   (present, same ETag and size) and refuses the manifest otherwise, so a
//!   copy is exactly the source's content or nothing. The segments are
//!   objects of their own, replicated as such (a placement container).
//! - DLO (`X-Object-Manifest: container/prefix`): an object with that
//!   header, usually of zero bytes; its content is whatever the segments
//!   under the prefix are. A body of its own (Swift keeps it, and lists its
//!   MD5) is streamed like a plain object's, so the copy lists the same.
//! - Symlink (`X-Symlink-Target`, maybe `-Account`, and `-Etag` for a static
//!   link): a zero-byte object with those headers. A target account naming
//!   the source's own account is rewritten to the destination's own (the
//!   link points into the replicated account on both sides); its listing
//!   `hash` names the target ([`symlink_hash`]), as the copy's version
//!   does; any other
//!   account is carried as written: a DR pair normally keeps the same
//!   account names on both clusters, and a link into an account the
//!   destination lacks dangles there as it would after any copy.
//!
//! Manifests and headers come from the server and are checked, not
//! trusted: bounded size ([`MAX_MANIFEST_BYTES`]), a JSON list of segment
//! objects, header values that are valid HTTP.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::client::bad_header;
use super::copy::Rename;

/// The query that reads an object as stored: an SLO's manifest (in the PUT
/// format), a DLO's manifest object, a symlink itself; plain objects as they are.
pub(crate) const READ_AS_STORED: [(&str, &str); 3] = [
    ("multipart-manifest", "get"),
    ("format", "raw"),
    ("symlink", "get"),
];

/// The query of an SLO manifest PUT.
pub(crate) const SLO_PUT: [(&str, &str); 1] = [("multipart-manifest", "put")];

/// The largest SLO manifest read (Swift's own `max_manifest_size` default
/// is 8 MiB for the PUT form; the stored form is larger).
pub(crate) const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// What an object read with [`READ_AS_STORED`] is, from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Plain data.
    Plain,
    /// An SLO; the body is its manifest.
    Slo,
    /// A DLO manifest: `X-Object-Manifest`.
    Dlo { manifest: String },
    /// A symlink.
    Symlink {
        target: String,
        account: Option<String>,
        etag: Option<String>,
    },
}

impl Kind {
    /// The kind the headers (lower-case names) tell.
    pub(crate) fn of(headers: &BTreeMap<String, String>) -> Kind {
        let get = |n: &str| headers.get(n).map(|v| v.trim().to_string());
        if get("x-static-large-object").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Kind::Slo;
        }
        if let Some(target) = get("x-symlink-target") {
            return Kind::Symlink {
                target,
                account: get("x-symlink-target-account"),
                etag: get("x-symlink-target-etag"),
            };
        }
        if let Some(manifest) = get("x-object-manifest") {
            return Kind::Dlo { manifest };
        }
        Kind::Plain
    }

    /// A name for messages.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Kind::Plain => "object",
            Kind::Slo => "static large object",
            Kind::Dlo { .. } => "dynamic large object manifest",
            Kind::Symlink { .. } => "symlink",
        }
    }

    /// The headers that make a zero-byte PUT this DLO manifest or symlink
    /// (none for the others). `accounts`: (source's, destination's) account,
    /// for a symlink's target account (module docs).
    pub(crate) fn put_headers(
        &self,
        accounts: Option<(&str, &str)>,
    ) -> Result<HeaderMap, super::AgentError> {
        let mut h = HeaderMap::new();
        let mut set = |name: &'static str, value: &str| -> Result<(), super::AgentError> {
            let v = HeaderValue::from_str(value).map_err(|_| bad_header(name))?;
            h.insert(HeaderName::from_static(name), v);
            Ok(())
        };
        match self {
            Kind::Plain | Kind::Slo => {}
            Kind::Dlo { manifest } => set("x-object-manifest", manifest)?,
            Kind::Symlink {
                target,
                account,
                etag,
            } => {
                set("x-symlink-target", target)?;
                if let Some(acc) = account {
                    let acc = match accounts {
                        Some((src, dst)) if acc == src => dst,
                        _ => acc,
                    };
                    set("x-symlink-target-account", acc)?;
                }
                if let Some(e) = etag {
                    set("x-symlink-target-etag", e)?;
                }
            }
        }
        Ok(h)
    }
}

/// A symlink's listing `hash` ([`super::client::ObjectEntry::hash`]):
/// its own `etag`, its `target` (`container/object` in the link's own
/// account, else `/v1/ACCOUNT/container/object`, percent-encoded as Swift
/// shows it) and a static link's target ETag.
pub(crate) fn symlink_hash(etag: &str, target: &str, target_etag: Option<&str>) -> String {
    let mut out = format!("{etag};symlink={target}");
    if let Some(e) = target_etag {
        out.push_str(";etag=");
        out.push_str(e.trim().trim_matches('"'));
    }
    out
}

/// An SLO manifest ready to PUT.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SloManifest {
    /// The PUT body (a JSON list of `path`/`etag`/`size_bytes`/`range` or `data`).
    pub body: Vec<u8>,
    /// The sum of the segments' sizes, when every segment says its size.
    pub size: Option<u64>,
    /// The manifest was in the stored form (an older Swift without
    /// `format=raw`: the answer's Content-Type is then not the object's).
    pub was_stored_form: bool,
}

/// The manifest a GET with [`READ_AS_STORED`] answered → the PUT body.
/// Refuses anything but a non-empty JSON list of segment objects.
pub(crate) fn slo_manifest(raw: &[u8]) -> Result<SloManifest, String> {
    if raw.len() > MAX_MANIFEST_BYTES {
        return Err(format!("manifest larger than {MAX_MANIFEST_BYTES} bytes"));
    }
    let list: Vec<Value> =
        serde_json::from_slice(raw).map_err(|e| format!("manifest is not a JSON list: {e}"))?;
    if list.is_empty() {
        return Err("manifest lists no segment".into());
    }
    let mut out = Vec::with_capacity(list.len());
    let mut size = Some(0u64);
    let mut was_stored_form = false;
    for (i, seg) in list.iter().enumerate() {
        let Value::Object(seg) = seg else {
            return Err(format!("segment {i} is not a JSON object"));
        };
        let text = |k: &str| seg.get(k).and_then(Value::as_str);
        let mut put = Map::new();
        if let Some(data) = seg.get("data") {
            // an inline data segment, carried as is
            if !data.is_string() {
                return Err(format!("segment {i}: `data` is not a string"));
            }
            put.insert("data".into(), data.clone());
            size = None;
        } else {
            let (path, etag, bytes) = match (text("path"), text("name")) {
                (Some(p), _) => (p, seg.get("etag"), seg.get("size_bytes")),
                (None, Some(n)) => {
                    was_stored_form = true;
                    (n, seg.get("hash"), seg.get("bytes"))
                }
                (None, None) => return Err(format!("segment {i} has no path")),
            };
            if !path.starts_with('/') || path.len() < 4 || path.chars().any(char::is_control) {
                return Err(format!(
                    "segment {i}: {path:?} is not a /container/object path"
                ));
            }
            put.insert("path".into(), path.into());
            match etag {
                Some(Value::String(e)) => {
                    put.insert("etag".into(), e.trim_matches('"').into());
                }
                None | Some(Value::Null) => {}
                Some(_) => return Err(format!("segment {i}: the etag is not a string")),
            }
            match bytes {
                Some(Value::Number(n)) if n.as_u64().is_some() => {
                    let n = n.as_u64().unwrap_or(0);
                    put.insert("size_bytes".into(), n.into());
                    size = size.and_then(|s| s.checked_add(n));
                }
                None | Some(Value::Null) => size = None,
                Some(_) => return Err(format!("segment {i}: the size is not a whole number")),
            }
            if let Some(r) = seg.get("range") {
                if !r.is_string() {
                    return Err(format!("segment {i}: `range` is not a string"));
                }
                put.insert("range".into(), r.clone());
                // the segment's size is not the part it gives
                size = None;
            }
        }
        out.push(Value::Object(put));
    }
    let body = serde_json::to_vec(&out).map_err(|e| format!("manifest: {e}"))?;
    Ok(SloManifest {
        body,
        size,
        was_stored_form,
    })
}

/// An SLO manifest's PUT body with each segment `path` (`/container/object`)
/// that `rename` moves named at its new place.
pub(crate) fn rename_segments(body: &[u8], rename: Rename<'_>) -> Result<Vec<u8>, String> {
    let mut list: Vec<Value> =
        serde_json::from_slice(body).map_err(|e| format!("manifest: {e}"))?;
    let mut changed = false;
    for seg in &mut list {
        let Some(Value::String(path)) = seg.get_mut("path") else {
            continue;
        };
        if let Some((c, o)) = rename(path.trim_start_matches('/')) {
            *path = format!("/{c}/{o}");
            changed = true;
        }
    }
    if !changed {
        return Ok(body.to_vec());
    }
    serde_json::to_vec(&list).map_err(|e| format!("manifest: {e}"))
}

/// A symlink's `target` (`container/object`, percent-encoded as Swift
/// keeps it) at the place `rename` moves it to, encoded the same way.
pub(crate) fn rename_target(target: &str, rename: Rename<'_>) -> Option<String> {
    let name = percent_encoding::percent_decode_str(target)
        .decode_utf8()
        .ok()?;
    let (c, o) = rename(&name)?;
    Some(
        super::url::object_path(&c, &o)
            .trim_start_matches('/')
            .to_string(),
    )
}

/// Swift's answer to an SLO manifest PUT it refused, in words for the log.
pub(crate) fn slo_refused(detail: &str) -> String {
    format!(
        "static large object manifest refused: a segment is missing or differs at the destination \
         (the object is tried again next round, once its segments are there; it is never copied \
         as a plain object): {detail}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kinds_from_headers() {
        assert_eq!(Kind::of(&h(&[("etag", "x")])), Kind::Plain);
        assert_eq!(
            Kind::of(&h(&[("x-static-large-object", "True")])),
            Kind::Slo
        );
        assert_eq!(
            Kind::of(&h(&[("x-object-manifest", "segs/p/")])),
            Kind::Dlo {
                manifest: "segs/p/".into()
            }
        );
        let link = Kind::of(&h(&[
            ("x-symlink-target", "c/o"),
            ("x-symlink-target-account", "AUTH_a"),
        ]));
        let put = link.put_headers(Some(("AUTH_a", "AUTH_b"))).unwrap();
        assert_eq!(put["x-symlink-target"], "c/o");
        assert_eq!(
            put["x-symlink-target-account"], "AUTH_b",
            "own account mapped"
        );
        let put = link.put_headers(Some(("AUTH_z", "AUTH_b"))).unwrap();
        assert_eq!(
            put["x-symlink-target-account"], "AUTH_a",
            "others as written"
        );
        let bad = Kind::Dlo {
            manifest: "a\nb".into(),
        };
        assert!(bad.put_headers(None).is_err());
    }

    #[test]
    fn raw_manifests_pass_and_stored_ones_are_converted() {
        let raw = br#"[{"etag": "6bad", "path": "/segs/big/s1", "size_bytes": 10},
                       {"etag": "55eb", "path": "/segs/big/s2", "size_bytes": 5}]"#;
        let m = slo_manifest(raw).unwrap();
        assert_eq!(m.size, Some(15));
        assert!(!m.was_stored_form);
        let v: Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(v[1]["path"], "/segs/big/s2");
        assert_eq!(v[1]["etag"], "55eb");
        let stored = br#"[{"name": "/segs/big/s1", "bytes": 10, "hash": "6bad",
            "content_type": "x", "last_modified": "2026-12-04T20:15:06.000000"},
            {"name": "/segs/sub", "bytes": 7, "hash": "\"abcd\"", "sub_slo": true, "range": "0-3"}]"#;
        let m = slo_manifest(stored).unwrap();
        assert!(m.was_stored_form);
        assert_eq!(m.size, None, "a range hides the size");
        let v: Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"path": "/segs/big/s1", "etag": "6bad", "size_bytes": 10},
                {"path": "/segs/sub", "etag": "abcd", "size_bytes": 7, "range": "0-3"},
            ])
        );
    }

    #[test]
    fn moved_segments_and_targets_are_renamed() {
        let rename = |n: &str| match n {
            "segs/a b" => Some(("segs.q".to_string(), "a b@1.00000".to_string())),
            _ => None,
        };
        let body = br#"[{"path": "/segs/a b", "etag": "x"}, {"path": "/segs/c"}]"#;
        let v: Value = serde_json::from_slice(&rename_segments(body, &rename).unwrap()).unwrap();
        assert_eq!(v[0]["path"], "/segs.q/a b@1.00000");
        assert_eq!(v[1]["path"], "/segs/c");
        assert_eq!(rename_segments(b"[]", &rename).unwrap(), b"[]");
        assert!(rename_segments(b"{", &rename).is_err());
        let t = rename_target("segs/a%20b", &rename).unwrap();
        assert!(t.starts_with("segs.q/a%20b"), "{t}");
        assert_eq!(rename_target("segs/c", &rename), None);
        assert_eq!(rename_target("segs/%ff", &rename), None, "not UTF-8");
        assert_eq!(
            symlink_hash("d41d8", "c/o", Some("\"e\"")),
            "d41d8;symlink=c/o;etag=e"
        );
    }

    #[test]
    fn bad_manifests_are_refused_with_a_reason() {
        for (raw, why) in [
            (&b"{}"[..], "not a JSON list"),
            (b"[]", "no segment"),
            (b"[1]", "not a JSON object"),
            (br#"[{"etag": "x"}]"#, "no path"),
            (br#"[{"path": "rel/x"}]"#, "not a /container/object"),
            (br#"[{"path": "/c/o", "size_bytes": -1}]"#, "whole number"),
            (br#"[{"path": "/c/o", "etag": 5}]"#, "etag"),
        ] {
            let e = slo_manifest(raw).unwrap_err();
            assert!(
                e.contains(why),
                "{e} for {:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(slo_manifest(&huge).unwrap_err().contains("larger than"));
    }
}
