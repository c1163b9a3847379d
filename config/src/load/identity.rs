//! The checks of `[sites.NAME.identity]` (how a site answers through the
//! public entry, for the verify step): one way to tell the site, a valid
//! header name and path, and no two sites of a group identified alike.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    /// Two sites of one group that identify themselves alike cannot be told
    /// apart by a verify step: refused (see [`alike`]).
    pub(super) fn check_identities(
        &mut self,
        group: &str,
        g: &GroupConfig,
        sites: &BTreeMap<String, SiteConfig>,
    ) {
        let list = g.sites.get_ref();
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let (Some(ia), Some(ib)) = (
                    sites.get(a.get_ref()).and_then(|s| s.identity.as_ref()),
                    sites.get(b.get_ref()).and_then(|s| s.identity.as_ref()),
                ) else {
                    continue;
                };
                if let Some(how) = alike(ia, ib) {
                    let key = format!("sites.{}.identity", b.get_ref());
                    self.push(
                        self.at(&key),
                        &key,
                        None,
                        format!(
                            "{how} sites.{}.identity, and both serve group {group}: a verify step could not tell them apart",
                            a.get_ref()
                        ),
                    );
                }
            }
        }
    }

    pub(super) fn check_identity(&mut self, key: &str, id: &crate::Identity) {
        let by_header = id.header.is_some() || id.value.is_some();
        if by_header == id.body_contains.is_some() {
            self.push(
                self.at(key),
                key,
                None,
                "give either header and value, or body_contains (one way to tell the site)",
            );
        } else if by_header && (id.header.is_none() || id.value.is_none()) {
            self.push(
                self.at(key),
                key,
                None,
                "header and value go together: the header that names the site and its value here",
            );
        }
        if let Some(h) = &id.header {
            let token = !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                let k = format!("{key}.header");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{h:?}")),
                    "must be an HTTP header name, e.g. \"X-Served-By\"",
                );
            }
        }
        if id.body_contains.as_deref() == Some("") || id.value.as_deref() == Some("") {
            self.push(
                self.at(key),
                key,
                None,
                "an empty value or body_contains matches every answer: it cannot tell sites apart",
            );
        }
        if !id.path.starts_with('/') || id.path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            let k = format!("{key}.path");
            self.push(
                self.at(&k),
                &k,
                Some(format!("{:?}", id.path)),
                "must be an absolute path without spaces, e.g. \"/\" or \"/whoami\"",
            );
        }
        if id.timeout.is_zero() {
            self.positive(&format!("{key}.timeout"));
        }
        self.timeout_floor(&format!("{key}.timeout"), id.timeout);
    }
}

/// How `b` is identified like `a`, if an answer of one site can match the
/// other's identity: the same header (names compare without case, as
/// HTTP's do) with the same value, whatever path or timeout each asks
/// with; or a `body_contains` inside the other's (an answer holding
/// "node web10" holds "node web1" too).
fn alike(a: &crate::Identity, b: &crate::Identity) -> Option<&'static str> {
    match (a, b) {
        (
            crate::Identity {
                header: Some(ha),
                value: Some(va),
                ..
            },
            crate::Identity {
                header: Some(hb),
                value: Some(vb),
                ..
            },
        ) => (ha.eq_ignore_ascii_case(hb) && va == vb).then_some("the same header and value as"),
        (
            crate::Identity {
                body_contains: Some(na),
                ..
            },
            crate::Identity {
                body_contains: Some(nb),
                ..
            },
        ) => {
            if na.is_empty() || nb.is_empty() {
                None // refused on its own: it matches every answer
            } else if na == nb {
                Some("the same as")
            } else if na.contains(nb.as_str()) || nb.contains(na.as_str()) {
                Some("a body_contains inside (or around) that of")
            } else {
                None
            }
        }
        _ => None,
    }
}
