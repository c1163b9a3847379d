//! Reading failover.conf: parse each table on its own so that every problem in
//! the file is reported at once, then check cross-references.
//!
//! Each problem carries file:line:col, the dotted key, the offending value
//! (masked for secret keys) and what is allowed.
//!
//! How "every problem at once" works: each table (`[orchestrator]`,
//! `[detection]`, each `[sites.NAME]`, ...) is deserialised on its own. When
//! serde stops at a bad key, the key is located in the parsed tree by its span
//! (giving a precise dotted path such as `sites.ca.checks[0].urlx`), reported,
//! removed from a copy of the table, and the table is deserialised again, until
//! it succeeds or a required key is missing.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::model::*;
use crate::ConfigError;

/// One thing wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// Dotted key, e.g. `groups.web.sites[1]`.
    pub key: String,
    /// What was found (masked if secret), if there was a value.
    pub value: Option<String>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.key
        )?;
        if let Some(v) = &self.value {
            write!(f, " = {v}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parse and validate config text; `path` is used in messages only.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut cx = Cx {
        text,
        path: path.to_path_buf(),
        root: &root,
        problems: Vec::new(),
        deser: BTreeSet::new(),
    };
    let cfg = if syntax.is_empty() {
        cx.parse_all()
    } else {
        // The recovered tree may be missing whole tables; validating it would
        // only add confusing follow-on problems.
        for e in &syntax {
            let span = e.span().unwrap_or(0..0);
            cx.push(
                span,
                "(syntax)",
                None,
                format!("invalid TOML: {}", e.message().trim()),
            );
        }
        None
    };
    if cx.problems.is_empty() {
        if let Some(cfg) = cfg {
            return Ok(cfg);
        }
    }
    let mut problems = cx.problems;
    problems.sort_by(|a, b| (a.line, a.col, &a.key).cmp(&(b.line, b.col, &b.key)));
    problems.dedup();
    Err(ConfigError::Invalid(problems))
}

/// Keys whose values are secrets: never echoed.
const SECRET_WORDS: &[&str] = &["token", "password", "secret", "credentials", "key"];

/// How a masked value is shown.
const MASK: &str = "\"****\"";

/// Is any part of this dotted key secret-looking?
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| k.contains(w))
}

/// Rounds of "report, remove the bad key, try again" per table.
const MAX_ROUNDS: usize = 64;

/// One step of a path into the TOML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// `base` followed by `segs` as a dotted key: `sites.ca` + `checks`,`0`,`url`
/// = `sites.ca.checks[0].url`.
fn fmt_path(base: &str, segs: &[Seg]) -> String {
    let mut s = base.to_string();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    s.push_str(k);
                } else {
                    s.push_str(&format!("{k:?}"));
                }
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Split a dotted key made by [`fmt_path`] (with bare keys only) back into steps.
fn parse_path(key: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part
            .split_once('[')
            .map(|(n, r)| (n, Some(r)))
            .unwrap_or((part, None));
        if !name.is_empty() {
            out.push(Seg::Key(name.to_string()));
        }
        while let Some(r) = rest {
            let (idx, tail) = r.split_once(']').unwrap_or((r, ""));
            if let Ok(i) = idx.parse() {
                out.push(Seg::Index(i));
            }
            rest = tail.strip_prefix('[');
        }
    }
    out
}

/// The node at `segs` below `v`, if there is one.
fn get<'a, 'i>(v: &'a Spanned<DeValue<'i>>, segs: &[Seg]) -> Option<&'a Spanned<DeValue<'i>>> {
    let mut cur = v;
    for seg in segs {
        cur = match (seg, cur.get_ref()) {
            (Seg::Key(k), DeValue::Table(t)) => t.iter().find(|(kk, _)| kk.get_ref() == k)?.1,
            (Seg::Index(i), DeValue::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The path below `v` of the node a serde error points at: the deepest key or
/// value whose span is exactly `target`, else the smallest one containing it.
///
/// Every node is visited, because a `[header]` table's span covers only its
/// header line, not its keys.
fn locate(v: &Spanned<DeValue<'_>>, target: &Range<usize>) -> Vec<Seg> {
    // (exact, -len, depth) ordering: higher is better.
    type Best = Option<((bool, std::cmp::Reverse<usize>, usize), Vec<Seg>)>;
    fn consider(span: Range<usize>, target: &Range<usize>, path: &[Seg], best: &mut Best) {
        let exact = span == *target;
        let contains = span.start <= target.start && target.end <= span.end && !span.is_empty();
        if !exact && !contains {
            return;
        }
        let rank = (exact, std::cmp::Reverse(span.len()), path.len());
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            *best = Some((rank, path.to_vec()));
        }
    }
    fn walk(v: &Spanned<DeValue<'_>>, target: &Range<usize>, path: &mut Vec<Seg>, best: &mut Best) {
        consider(v.span(), target, path, best);
        match v.get_ref() {
            DeValue::Table(t) => {
                for (k, x) in t.iter() {
                    path.push(Seg::Key(k.get_ref().to_string()));
                    consider(k.span(), target, path, best);
                    walk(x, target, path, best);
                    path.pop();
                }
            }
            DeValue::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(x, target, path, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut best = None;
    walk(v, target, &mut Vec::new(), &mut best);
    best.map(|(_, p)| p).unwrap_or_default()
}

/// Remove the innermost table key on `segs` from `v`; returns how many steps
/// of `segs` name the removed key, or `None` if nothing could be removed.
/// Array elements are never removed, so indexes in later messages stay right.
fn remove(v: &mut Spanned<DeValue<'_>>, segs: &[Seg]) -> Option<usize> {
    let k = segs.iter().rposition(|s| matches!(s, Seg::Key(_)))?;
    let mut cur = v;
    for seg in &segs[..k] {
        cur = match (seg, cur.get_mut()) {
            (Seg::Key(name), DeValue::Table(t)) => {
                t.iter_mut().find(|(kk, _)| kk.get_ref() == name)?.1
            }
            (Seg::Index(i), DeValue::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    let Seg::Key(name) = &segs[k] else {
        return None;
    };
    match cur.get_mut() {
        DeValue::Table(t) => {
            let found = t.keys().find(|kk| kk.get_ref() == name)?.clone();
            t.remove(&found).map(|_| k + 1)
        }
        _ => None,
    }
}

/// Every string inside `v` (to scrub secret values out of messages).
fn strings<'a>(v: &'a Spanned<DeValue<'_>>, out: &mut Vec<&'a str>) {
    match v.get_ref() {
        DeValue::String(s) => out.push(s),
        DeValue::Table(t) => t.iter().for_each(|(_, x)| strings(x, out)),
        DeValue::Array(a) => a.iter().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The names between backquotes in a serde message: "one of `a`, `b`" → [a, b].
fn quoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Describe serde's "found" part without repeating the value (it is shown
/// separately, and may be a secret).
fn describe_found(found: &str) -> String {
    let found = found.trim();
    let word = found.split([' ', '`']).next().unwrap_or(found);
    match word {
        "string" => "a string".into(),
        "integer" => "an integer".into(),
        "floating" => "a float".into(),
        "boolean" => "a boolean".into(),
        "map" => "a table".into(),
        "sequence" => "an array".into(),
        "char" => "a character".into(),
        _ => found.to_string(),
    }
}

/// Say what is allowed in words an operator knows (TOML, not Rust).
fn describe_expected(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "struct SecretRef" => {
            "a secret reference: { file = \"/etc/warden/NAME\" } or { env = \"VAR\" } (secret values are never written in the file)".into()
        }
        "a duration" => DURATION_HINT.into(),
        "socket address" => "an IP:PORT address such as \"10.0.0.1:7000\"".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "a borrowed string" | "a string" => "a string".into(),
        "a boolean" => "a boolean (true or false)".into(),
        _ if e.starts_with("struct ") => "a table".into(),
        _ if e.starts_with("one of ") || e.starts_with('`') => {
            let v: Vec<String> = quoted(e).iter().map(|s| format!("\"{s}\"")).collect();
            format!("one of {}", v.join(", "))
        }
        _ => e.to_string(),
    }
}

const DURATION_HINT: &str = "a duration such as \"500ms\", \"3s\" or \"1m 30s\"";

/// Turn a serde/toml message into "what is wrong; what is allowed".
/// `node` is the offending value, if any.
fn humanize(msg: &str, node: Option<&Spanned<DeValue<'_>>>) -> String {
    let msg = msg.trim();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        return match rest.split_once(", expected ") {
            Some((_, allowed)) => format!(
                "unknown key; allowed keys here: {}",
                quoted(allowed).join(", ")
            ),
            None => "unknown key; this table takes no keys".into(),
        };
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        return match rest.split_once(", expected ") {
            Some((_, allowed)) => {
                let v: Vec<String> = quoted(allowed).iter().map(|s| format!("\"{s}\"")).collect();
                format!("unknown value; allowed: {}", v.join(", "))
            }
            None => "unknown value".into(),
        };
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            if let Some((found, expected)) = rest.rsplit_once(", expected ") {
                let what = describe_expected(expected);
                if expected.trim() == "a duration" {
                    if let Some(DeValue::String(s)) = node.map(|n| n.get_ref()) {
                        let why = humantime::parse_duration(s)
                            .err()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default();
                        return format!("not a duration{why}; expected {what}");
                    }
                }
                return format!("expected {what}, found {}", describe_found(found));
            }
        }
    }
    if msg == "invalid socket address syntax" {
        return "not an IP:PORT address; expected an address such as \"10.0.0.1:7000\" or \"[::1]:7000\" (host names are not allowed here)"
            .into();
    }
    msg.to_string()
}

/// `Some(name)` if the message is serde's "missing field `name`".
fn missing_field(msg: &str) -> Option<String> {
    let rest = msg.trim().strip_prefix("missing field `")?;
    Some(rest.trim_end_matches('`').to_string())
}

/// Is `s` a plausible `host:port`?
fn host_port(s: &str) -> bool {
    s.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && !h.contains(char::is_whitespace) && p.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

/// A `[frontends.NAME]` entry checked against its kind.
enum CheckedFrontend {
    Builtin(FrontendConfig),
    Haproxy(HaproxyFrontendConfig),
}

struct Cx<'t, 'r> {
    text: &'t str,
    path: PathBuf,
    /// The whole parsed file, to find where a key is.
    root: &'r Spanned<DeValue<'t>>,
    problems: Vec<Problem>,
    /// Keys serde already complained about: a later check of the same key
    /// (or its table) would only repeat the problem with a defaulted value.
    deser: BTreeSet<String>,
}

impl<'t, 'r> Cx<'t, 'r> {
    /// 1-based line and column (in characters) of a byte offset.
    fn pos(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    /// Did deserialisation already report `key` or something inside it?
    fn covered(&self, key: &str) -> bool {
        self.deser.iter().any(|k| {
            k.strip_prefix(key).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        })
    }

    /// Record a problem found while deserialising.
    fn push_de(&mut self, span: Range<usize>, key: &str, value: Option<String>, message: String) {
        self.deser.insert(key.to_string());
        self.add(span, key, value, message);
    }

    /// Record a problem found by a check after deserialising, unless it only
    /// repeats one serde reported.
    fn push(
        &mut self,
        span: Range<usize>,
        key: &str,
        value: Option<String>,
        message: impl Into<String>,
    ) {
        if !self.covered(key) {
            self.add(span, key, value, message.into());
        }
    }

    /// Record a problem. `value` is masked and the message scrubbed if `key`
    /// looks secret.
    fn add(&mut self, span: Range<usize>, key: &str, value: Option<String>, message: String) {
        let (line, col) = self.pos(span.start);
        let mut message = message;
        let value = if is_secret(key) {
            if let Some(v) = &value {
                let inner = v.trim_matches('"');
                if inner.len() >= 3 {
                    message = message.replace(inner, "****");
                }
            }
            value.map(|_| MASK.to_string())
        } else {
            value
        };
        self.problems.push(Problem {
            file: self.path.clone(),
            line,
            col,
            key: key.to_string(),
            value,
            message,
        });
    }

    /// The source text of a short single-line value, to show what was found.
    fn snippet(&self, span: &Range<usize>) -> Option<String> {
        let s = self.text.get(span.clone())?.trim();
        if s.is_empty() || s.contains('\n') || s.chars().count() > 80 {
            return None;
        }
        Some(s.to_string())
    }

    /// What to show as the value of `node`: scalars and inline arrays/tables,
    /// not `[header]` tables.
    fn shown(&self, node: &Spanned<DeValue<'_>>) -> Option<String> {
        let s = self.snippet(&node.span())?;
        match node.get_ref() {
            DeValue::Table(_) if !s.starts_with('{') => None,
            DeValue::Array(_) if s.starts_with("[[") => None,
            _ => Some(s),
        }
    }

    /// Span of the value at a dotted key, or of the nearest enclosing value
    /// that exists (so a defaulted key points at its table).
    fn at(&self, key: &str) -> Range<usize> {
        let mut cur = self.root;
        for seg in parse_path(key) {
            let next = match (&seg, cur.get_ref()) {
                (Seg::Key(k), DeValue::Table(t)) => {
                    t.iter().find(|(kk, _)| kk.get_ref() == k).map(|(_, v)| v)
                }
                (Seg::Index(i), DeValue::Array(a)) => a.get(*i),
                _ => None,
            };
            match next {
                Some(n) => cur = n,
                None => break,
            }
        }
        cur.span()
    }

    /// The value at a dotted key, if present, as shown in a problem.
    fn value_at(&self, key: &str) -> Option<String> {
        let node = get(self.root, &parse_path(key))?;
        self.shown(node)
    }

    /// Deserialize one table; every serde error becomes a problem under its
    /// precise dotted key (see the module doc).
    ///
    /// Returns the value when the table could be built, possibly with defaults
    /// in place of reported bad keys (so cross-reference checks can still run),
    /// and `None` when a required key is missing or wrong.
    fn de<T: DeserializeOwned>(&mut self, base: &str, value: &Spanned<DeValue<'_>>) -> Option<T> {
        let mut v = value.clone();
        let mut removed: Vec<String> = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let err = match T::deserialize(ValueDeserializer::from(v.clone())) {
                Ok(t) => return Some(t),
                Err(e) => e,
            };
            let span = err.span().unwrap_or_else(|| v.span());
            let segs = locate(&v, &span);
            let key = fmt_path(base, &segs);
            if let Some(field) = missing_field(err.message()) {
                let full = fmt_path(&key, &[Seg::Key(field.clone())]);
                // Missing because we removed it after reporting it: already said.
                if !removed.contains(&full) {
                    self.push_de(span, &full, None, format!("missing required key `{field}`"));
                }
                return None;
            }
            let node = get(&v, &segs);
            let unknown = err.message().trim().starts_with("unknown field");
            let mut message = humanize(err.message(), node);
            if is_secret(&key) {
                if let Some(n) = node {
                    let mut found = Vec::new();
                    strings(n, &mut found);
                    for s in found.into_iter().filter(|s| !s.is_empty()) {
                        message = message.replace(s, "****");
                    }
                }
            }
            // The value of an unknown key is never needed to fix it (and a
            // misspelt secret key must not leak), so it is not shown.
            let shown = if unknown {
                None
            } else {
                node.and_then(|n| self.shown(n))
            };
            self.push_de(span, &key, shown, message);
            let k = remove(&mut v, &segs)?;
            removed.push(fmt_path(base, &segs[..k]));
        }
        None
    }

    fn table<'a>(&mut self, key: &str, v: &'a Spanned<DeValue<'t>>) -> Option<&'a DeTable<'t>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                let shown = self.shown(v);
                self.push(
                    v.span(),
                    key,
                    shown,
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A `[section.NAME]` map: each entry parsed on its own. Also returns every
    /// validly named entry, parsed or not, so that a reference to a broken
    /// entry is not also reported as unknown.
    fn named<T: DeserializeOwned>(
        &mut self,
        section: &str,
        v: Option<&'r Spanned<DeValue<'t>>>,
    ) -> (BTreeMap<String, T>, BTreeSet<String>) {
        let mut out = BTreeMap::new();
        let mut defined = BTreeSet::new();
        let Some(v) = v else { return (out, defined) };
        let Some(t) = self.table(section, v) else {
            return (out, defined);
        };
        for (name, val) in t.iter() {
            let key = fmt_path(section, &[Seg::Key(name.get_ref().to_string())]);
            if !valid_name(name.get_ref()) {
                self.push(
                    name.span(),
                    &key,
                    Some(format!("{:?}", name.get_ref())),
                    "names may contain only ASCII letters, digits, '-' and '_' (1-63 characters)",
                );
                continue;
            }
            defined.insert(name.get_ref().to_string());
            if let Some(parsed) = self.de::<T>(&key, val) {
                out.insert(name.get_ref().to_string(), parsed);
            }
        }
        (out, defined)
    }

    fn parse_all(&mut self) -> Option<Config> {
        let root: &'r Spanned<DeValue<'t>> = self.root;
        let DeValue::Table(top) = root.get_ref() else {
            return None;
        };
        let mut sections: BTreeMap<&str, &'r Spanned<DeValue<'t>>> = BTreeMap::new();
        const ALLOWED: &str =
            "allowed top-level tables: orchestrator, detection, sites, frontends, groups";
        for (k, v) in top.iter() {
            match k.get_ref().as_ref() {
                "orchestrator" => sections.insert("orchestrator", v),
                "detection" => sections.insert("detection", v),
                "sites" => sections.insert("sites", v),
                "frontends" => sections.insert("frontends", v),
                "groups" => sections.insert("groups", v),
                other => {
                    let key = fmt_path("", &[Seg::Key(other.to_string())]);
                    self.push(k.span(), &key, None, format!("unknown key; {ALLOWED}"));
                    None
                }
            };
        }

        let orchestrator: Option<OrchestratorConfig> = match sections.get("orchestrator") {
            Some(v) => self.de("orchestrator", v),
            None => {
                self.push(
                    0..0,
                    "orchestrator",
                    None,
                    "missing table [orchestrator] (needs listen, data_dir, operator_token)",
                );
                None
            }
        };
        let detection: Option<Detection> = match sections.get("detection") {
            Some(v) => self.de("detection", v),
            None => Some(Detection::default()),
        };
        let (sites, site_names) = self.named::<SiteConfig>("sites", sections.get("sites").copied());
        let (frontend_entries, frontend_names) =
            self.named::<FrontendEntry>("frontends", sections.get("frontends").copied());
        let (groups, _) = self.named::<GroupConfig>("groups", sections.get("groups").copied());

        if let Some(o) = &orchestrator {
            self.check_orchestrator(o);
        }
        if let Some(d) = &detection {
            self.check_detection(d);
        }
        for (name, site) in &sites {
            self.check_site(name, site);
        }
        let mut frontends = BTreeMap::new();
        let mut haproxy_frontends = BTreeMap::new();
        let mut frontend_kinds = BTreeMap::new();
        for (name, fe) in &frontend_entries {
            let kind_key = fmt_path(
                "frontends",
                &[Seg::Key(name.clone()), Seg::Key("kind".into())],
            );
            if self.covered(&kind_key) {
                // A bad kind is reported already; checking the keys against a
                // guessed kind would only add confusing problems.
                continue;
            }
            let kind = fe.kind.as_ref().map(|k| *k.get_ref()).unwrap_or_default();
            frontend_kinds.insert(name.clone(), kind);
            match self.check_frontend(name, fe) {
                Some(CheckedFrontend::Builtin(c)) => {
                    frontends.insert(name.clone(), c);
                }
                Some(CheckedFrontend::Haproxy(c)) => {
                    haproxy_frontends.insert(name.clone(), c);
                }
                None => {}
            }
        }
        for (name, g) in &groups {
            self.check_group(name, g, &site_names, &frontend_names, &frontend_kinds);
        }

        Some(Config {
            path: self.path.clone(),
            orchestrator: orchestrator?,
            detection: detection?,
            sites,
            frontends,
            haproxy_frontends,
            groups,
        })
    }

    fn check_orchestrator(&mut self, o: &OrchestratorConfig) {
        self.check_secret("orchestrator.operator_token", &o.operator_token);
        if o.max_body_bytes < 1024 {
            self.push(
                self.at("orchestrator.max_body_bytes"),
                "orchestrator.max_body_bytes",
                Some(o.max_body_bytes.to_string()),
                "must be at least 1024",
            );
        }
        if let Some(u) = &o.url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                self.push(
                    self.at("orchestrator.url"),
                    "orchestrator.url",
                    Some(format!("{u:?}")),
                    "must be an http:// or https:// URL, e.g. \"https://warden.example.net:7000\"",
                );
            }
        }
        // long_poll may be 0 (no long-polling); a zero reconcile interval would spin.
        if o.reconcile_interval.is_zero() {
            self.positive("orchestrator.reconcile_interval");
        }
    }

    /// Report a zero duration at `key`.
    fn positive(&mut self, key: &str) {
        let value = self.value_at(key);
        self.push(
            self.at(key),
            key,
            value,
            format!("must be a positive duration; expected {DURATION_HINT}"),
        );
    }

    fn check_detection(&mut self, d: &Detection) {
        for (key, v) in [("detection.fall", d.fall), ("detection.rise", d.rise)] {
            if v == 0 {
                self.push(self.at(key), key, Some("0".into()), "must be at least 1");
            }
        }
        for (key, v) in [
            ("detection.interval", d.interval),
            ("detection.probe_timeout", d.probe_timeout),
            ("detection.failover_window", d.failover_window),
        ] {
            if v.is_zero() {
                self.positive(key);
            }
        }
        if d.agent_timeout <= d.interval {
            let key = "detection.agent_timeout";
            self.push(
                self.at(key),
                key,
                Some(format!(
                    "\"{}\"",
                    humantime::format_duration(d.agent_timeout)
                )),
                format!(
                    "must be longer than detection.interval ({})",
                    humantime::format_duration(d.interval)
                ),
            );
        }
    }

    fn check_site(&mut self, name: &str, site: &SiteConfig) {
        self.check_secret(&format!("sites.{name}.agent_token"), &site.agent_token);
        if site.report_interval.is_some_and(|d| d.is_zero()) {
            self.positive(&format!("sites.{name}.report_interval"));
        }
        for (list, checks) in [("checks", &site.checks), ("endpoints", &site.endpoints)] {
            let mut seen = BTreeSet::new();
            for (i, c) in checks.iter().enumerate() {
                let key = format!("sites.{name}.{list}[{i}]");
                self.check_check(&key, c);
                if list == "endpoints" && c.kind.get_ref() == &CheckKind::Command {
                    self.push(
                        c.kind.span(),
                        &format!("{key}.kind"),
                        Some("\"command\"".into()),
                        "endpoints are probed from other hosts: allowed kinds are \"http\" and \"tcp\"",
                    );
                }
                if !seen.insert(c.name.as_str()) {
                    let k = format!("{key}.name");
                    self.push(
                        self.at(&k),
                        &k,
                        Some(format!("{:?}", c.name)),
                        format!("name used twice in sites.{name}.{list}; names must be unique"),
                    );
                }
            }
        }
        for (list, hooks) in [("promote", &site.promote), ("demote", &site.demote)] {
            for (i, h) in hooks.iter().enumerate() {
                if h.command.get_ref().is_empty() || h.command.get_ref()[0].is_empty() {
                    self.push(
                        h.command.span(),
                        &format!("sites.{name}.{list}[{i}].command"),
                        self.snippet(&h.command.span()),
                        "must name a program: [\"/path/to/prog\", \"arg\", ...]",
                    );
                }
                if h.timeout.is_zero() {
                    self.positive(&format!("sites.{name}.{list}[{i}].timeout"));
                }
            }
        }
    }

    fn check_secret(&mut self, key: &str, s: &SecretRef) {
        let span = self.at(key);
        match (&s.file, &s.env) {
            (Some(_), Some(_)) => self.push(
                span,
                key,
                None,
                "give exactly one of `file` or `env`, not both",
            ),
            (None, None) => self.push(
                span,
                key,
                None,
                "give where the secret comes from: { file = \"/path\" } or { env = \"VAR\" }",
            ),
            (None, Some(e)) if e.is_empty() || e.contains(['=', '\0']) => {
                let k = format!("{key}.env");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{e:?}")),
                    "must name an environment variable, e.g. \"WARDEN_TOKEN\"",
                )
            }
            (Some(f), None) if f.as_os_str().is_empty() => {
                let k = format!("{key}.file");
                self.push(
                    self.at(&k),
                    &k,
                    Some("\"\"".into()),
                    "must be the path of a file holding the secret",
                )
            }
            _ => {}
        }
    }

    fn check_check(&mut self, key: &str, c: &CheckSpec) {
        let kspan = c.kind.span();
        match c.kind.get_ref() {
            CheckKind::Http => match &c.url {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.url"),
                    None,
                    "kind \"http\" needs url = \"http://host:port/path\"",
                ),
                Some(u) => {
                    let s = u.get_ref();
                    if !(s.starts_with("http://") || s.starts_with("https://")) || s.len() < 10 {
                        self.push(
                            u.span(),
                            &format!("{key}.url"),
                            Some(format!("{s:?}")),
                            "must be an http:// or https:// URL",
                        );
                    }
                }
            },
            CheckKind::Tcp => match &c.address {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.address"),
                    None,
                    "kind \"tcp\" needs address = \"host:port\"",
                ),
                Some(a) => {
                    if !host_port(a.get_ref()) {
                        self.push(
                            a.span(),
                            &format!("{key}.address"),
                            Some(format!("{:?}", a.get_ref())),
                            "must be host:port, e.g. \"db.ca.example.net:5432\"",
                        );
                    }
                }
            },
            CheckKind::Command => match &c.command {
                None => self.push(
                    kspan.clone(),
                    &format!("{key}.command"),
                    None,
                    "kind \"command\" needs command = [\"/path/to/prog\", \"arg\", ...]",
                ),
                Some(cmd) if cmd.get_ref().is_empty() || cmd.get_ref()[0].is_empty() => self.push(
                    cmd.span(),
                    &format!("{key}.command"),
                    self.snippet(&cmd.span()),
                    "must name a program: [\"/path/to/prog\", \"arg\", ...]",
                ),
                _ => {}
            },
        }
        if let Some(s) = c.expect_status {
            if !(100..=599).contains(&s) {
                let k = format!("{key}.expect_status");
                self.push(
                    self.at(&k),
                    &k,
                    Some(s.to_string()),
                    "must be an HTTP status code (100-599)",
                );
            }
        }
        if c.timeout.is_zero() {
            self.positive(&format!("{key}.timeout"));
        }
    }

    fn check_group(
        &mut self,
        name: &str,
        g: &GroupConfig,
        sites: &BTreeSet<String>,
        frontends: &BTreeSet<String>,
        frontend_kinds: &BTreeMap<String, FrontendDriverKind>,
    ) {
        let list = g.sites.get_ref();
        if list.len() < 2 {
            self.push(
                g.sites.span(),
                &format!("groups.{name}.sites"),
                self.snippet(&g.sites.span()),
                "a group needs at least two sites (primary first, then standbys)",
            );
        }
        let mut seen = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let key = format!("groups.{name}.sites[{i}]");
            if !sites.contains(s.get_ref()) {
                let known: Vec<_> = sites.iter().cloned().collect();
                self.push(
                    s.span(),
                    &key,
                    Some(format!("{:?}", s.get_ref())),
                    format!("unknown site; defined sites: [{}]", known.join(", ")),
                );
            }
            if seen.contains(s.get_ref()) {
                self.push(
                    s.span(),
                    &key,
                    Some(format!("{:?}", s.get_ref())),
                    "site listed twice",
                );
            }
            seen.push(s.get_ref().clone());
        }
        let scheme = *g.scheme.get_ref();
        let need_fe = matches!(scheme, Scheme::Frontend | Scheme::Hybrid);
        let need_dns = matches!(scheme, Scheme::Dns | Scheme::Hybrid);
        let scheme_shown = format!("\"{}\"", scheme.as_str());
        let scheme_key = format!("groups.{name}.scheme");
        if need_fe && g.frontend.is_none() {
            self.push(
                g.scheme.span(),
                &scheme_key,
                Some(scheme_shown.clone()),
                format!(
                    "scheme \"{}\" needs a [groups.{name}.frontend] table",
                    scheme.as_str()
                ),
            );
        }
        if need_dns && g.dns.is_none() {
            self.push(
                g.scheme.span(),
                &scheme_key,
                Some(scheme_shown.clone()),
                format!(
                    "scheme \"{}\" needs a [groups.{name}.dns] table",
                    scheme.as_str()
                ),
            );
        }
        if !need_fe {
            if let Some(f) = &g.frontend {
                self.push(
                    f.span(),
                    &format!("groups.{name}.frontend"),
                    None,
                    format!("scheme \"{}\" does not use a frontend table; remove it or use scheme = \"frontend\" or \"hybrid\"", scheme.as_str()),
                );
            }
        }
        if !need_dns {
            if let Some(d) = &g.dns {
                self.push(
                    d.span(),
                    &format!("groups.{name}.dns"),
                    None,
                    format!("scheme \"{}\" does not use a dns table; remove it or use scheme = \"dns\" or \"hybrid\"", scheme.as_str()),
                );
            }
        }
        if let Some(cmd) = &g.fence_command {
            if cmd.is_empty() || cmd[0].is_empty() {
                let k = format!("groups.{name}.fence_command");
                self.push(
                    self.at(&k),
                    &k,
                    self.value_at(&k),
                    "must name a program: [\"/path/to/prog\", \"arg\", ...]",
                );
            }
        }
        if g.step_timeout.is_zero() {
            self.positive(&format!("groups.{name}.step_timeout"));
        }
        // (A frontend table the scheme does not use is reported above; its
        // contents are not checked.)
        if let Some(fs) = g.frontend.as_ref().filter(|_| need_fe) {
            self.check_frontend_scheme(name, fs, list, sites, frontends, frontend_kinds);
        }
        if let Some(d) = &g.dns {
            let fe_names: Option<Vec<String>> = g.frontend.as_ref().map(|f| {
                f.get_ref()
                    .frontends
                    .iter()
                    .map(|s| s.get_ref().clone())
                    .collect()
            });
            self.check_dns(name, scheme, d, list, sites, fe_names);
        }
        if let Some(r) = &g.replication {
            self.check_replication(name, r.get_ref(), list);
        }
    }

    /// `[groups.NAME.replication]`: the plan's keys are there for every site
    /// of the group, and keys of other plans are not.
    fn check_replication(
        &mut self,
        name: &str,
        r: &crate::model::ReplicationConfig,
        list: &[Spanned<String>],
    ) {
        use crate::model::ReplicationPlan as P;
        let base = format!("groups.{name}.replication");
        let plan = r.plan;
        let shown = format!("\"{}\"", plan.as_str());
        for (k, d) in [
            ("resync_lag_max", r.resync_lag_max),
            ("resync_timeout", r.resync_timeout),
            ("interval", r.interval),
        ] {
            if d.is_zero() {
                self.positive(&format!("{base}.{k}"));
            }
        }
        if r.concurrency == 0 {
            let k = format!("{base}.concurrency");
            self.push(self.at(&k), &k, self.value_at(&k), "must be at least 1");
        }
        let share = r.max_delete_share;
        if !share.is_finite() || !(0.0..=1.0).contains(&share) {
            let k = format!("{base}.max_delete_share");
            self.push(
                self.at(&k),
                &k,
                self.value_at(&k),
                "must be a share from 0.0 to 1.0 (e.g. 0.10: a pass may delete up to 10 % of the peer's items)",
            );
        }
        if let Some(s) = &r.sync_key {
            self.check_secret(&format!("{base}.sync_key"), s);
        }
        let group_sites: Vec<String> = list.iter().map(|s| s.get_ref().clone()).collect();
        for site in r.sites.keys() {
            if !group_sites.contains(site) {
                let k = format!("{base}.sites.{site}");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    format!(
                        "not a site of group {name}; its sites: [{}]",
                        group_sites.join(", ")
                    ),
                );
            }
        }
        let swift = matches!(plan, P::Swift | P::SwiftContainerSync);
        // Group-level keys only some plans use.
        let group_keys: [(&str, bool, bool); 11] = [
            ("xattrs", r.xattrs.is_some(), plan == P::Rsync),
            ("acls", r.acls.is_some(), plan == P::Rsync),
            ("hard_links", r.hard_links.is_some(), plan == P::Rsync),
            ("sparse", r.sparse.is_some(), plan == P::Rsync),
            ("containers", !r.containers.is_empty(), swift),
            ("realm", r.realm.is_some(), plan == P::SwiftContainerSync),
            (
                "sync_key",
                r.sync_key.is_some(),
                plan == P::SwiftContainerSync,
            ),
            ("start", r.start.is_some(), plan == P::Command),
            ("stop", r.stop.is_some(), plan == P::Command),
            ("resync", r.resync.is_some(), plan == P::Command),
            ("verify", r.verify.is_some(), plan == P::Command),
        ];
        for (k, present, used) in group_keys {
            let key = format!("{base}.{k}");
            if present && !used {
                self.push(
                    self.at(&key),
                    &key,
                    None,
                    format!("plan {shown} does not use this key; remove it"),
                );
            }
        }
        if r.lag.is_some() && plan != P::Command {
            let key = format!("{base}.lag");
            self.push(
                self.at(&key),
                &key,
                None,
                format!("plan {shown} does not use this key; remove it"),
            );
        }
        let plan_key = format!("{base}.plan");
        let need = |this: &mut Self, key: &str, what: &str| {
            let k = format!("{base}.{key}");
            this.push(
                this.at(&plan_key),
                &k,
                Some(shown.clone()),
                format!("plan {shown} needs {key} = {what}"),
            );
        };
        match plan {
            P::Swift | P::SwiftContainerSync => {
                if r.containers.is_empty() {
                    need(self, "containers", "[\"name\", ...] (the placement list)");
                }
                for (i, c) in r.containers.iter().enumerate() {
                    if c.is_empty() || c.contains('/') {
                        let k = format!("{base}.containers[{i}]");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{c:?}")),
                            "must be a container name (no '/')",
                        );
                    }
                }
                if plan == P::SwiftContainerSync {
                    if r.realm.is_none() {
                        need(
                            self,
                            "realm",
                            "\"realm1\" (from container-sync-realms.conf)",
                        );
                    }
                    if r.sync_key.is_none() {
                        need(
                            self,
                            "sync_key",
                            "{ file = \"/path\" } (the X-Container-Sync-Key)",
                        );
                    }
                }
            }
            P::Command => {
                for (k, v) in [("start", &r.start), ("resync", &r.resync)] {
                    match v {
                        None => need(self, k, "[\"/path/to/prog\", \"arg\", ...]"),
                        Some(argv) if argv.is_empty() || argv[0].is_empty() => {
                            let key = format!("{base}.{k}");
                            self.push(
                                self.at(&key),
                                &key,
                                self.value_at(&key),
                                "must name a program: [\"/path/to/prog\", \"arg\", ...]",
                            );
                        }
                        _ => {}
                    }
                }
            }
            P::Rsync | P::None => {}
        }
        // Per-site keys.
        let (needed, allowed): (&[&str], &[&str]) = match plan {
            P::Rsync => (
                &["path", "module", "user", "password"],
                &[
                    "path",
                    "module",
                    "user",
                    "password",
                    "manifest",
                    "quarantine",
                ],
            ),
            P::Swift => (
                &["auth_url", "user", "key"],
                &["auth_url", "user", "key", "manifest", "account"],
            ),
            P::SwiftContainerSync => (
                &["auth_url", "user", "key", "cluster"],
                &["auth_url", "user", "key", "cluster", "account"],
            ),
            P::None | P::Command => (&[], &[]),
        };
        for site in &group_sites {
            let skey = format!("{base}.sites.{site}");
            let Some(rs) = r.sites.get(site) else {
                if !needed.is_empty() {
                    self.push(
                        self.at(&plan_key),
                        &skey,
                        Some(shown.clone()),
                        format!(
                            "plan {shown} needs a [{skey}] table with {}",
                            needed.join(", ")
                        ),
                    );
                }
                continue;
            };
            let present: [(&str, bool); 10] = [
                ("path", rs.path.is_some()),
                ("module", rs.module.is_some()),
                ("user", rs.user.is_some()),
                ("password", rs.password.is_some()),
                ("manifest", rs.manifest.is_some()),
                ("quarantine", rs.quarantine.is_some()),
                ("auth_url", rs.auth_url.is_some()),
                ("key", rs.key.is_some()),
                ("cluster", rs.cluster.is_some()),
                ("account", rs.account.is_some()),
            ];
            for (k, p) in present {
                let key = format!("{skey}.{k}");
                if p && !allowed.contains(&k) {
                    self.push(
                        self.at(&key),
                        &key,
                        None,
                        format!("plan {shown} does not use this key; remove it"),
                    );
                }
                if !p && needed.contains(&k) {
                    self.push(
                        self.at(&skey),
                        &key,
                        None,
                        format!("missing: plan {shown} needs {k} for every site of the group"),
                    );
                }
            }
            if let Some(m) = &rs.module {
                if let Err(e) = crate::model::parse_rsync_module(m) {
                    let key = format!("{skey}.module");
                    self.push(self.at(&key), &key, Some(format!("{m:?}")), e);
                }
            }
            if let Some(p) = &rs.path {
                if !p.is_absolute() {
                    let key = format!("{skey}.path");
                    self.push(
                        self.at(&key),
                        &key,
                        self.value_at(&key),
                        "must be an absolute path",
                    );
                }
            }
            if let Some(u) = &rs.auth_url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    let key = format!("{skey}.auth_url");
                    self.push(self.at(&key), &key, Some(format!("{u:?}")), "must be an http:// or https:// URL, e.g. \"http://10.0.0.2:8080/auth/v1.0\"");
                }
            }
            if let Some(pw) = &rs.password {
                self.check_secret(&format!("{skey}.password"), pw);
            }
            if let Some(k) = &rs.key {
                self.check_secret(&format!("{skey}.key"), k);
            }
        }
    }

    /// Check a `[frontends.NAME]` entry against its kind: the keys that kind
    /// needs are there, the other kind's keys are not. The typed entry when
    /// nothing is missing.
    fn check_frontend(&mut self, name: &str, fe: &FrontendEntry) -> Option<CheckedFrontend> {
        let key = fmt_path("frontends", &[Seg::Key(name.to_string())]);
        let kind = fe.kind.as_ref().map(|k| *k.get_ref()).unwrap_or_default();
        let foreign: &[(&str, bool, &str)] = match kind {
            FrontendDriverKind::Builtin => &[(
                "runtime",
                fe.runtime.is_some(),
                "only kind = \"haproxy\" is reached through a runtime API; this frontend is kind \"builtin\" (the default: `warden frontend`, which needs control and token). Add kind = \"haproxy\" or remove this key",
            )],
            FrontendDriverKind::Haproxy => &[
                (
                    "control",
                    fe.control.is_some(),
                    "kind \"haproxy\" is reached through runtime; control is only for kind \"builtin\" (`warden frontend`): remove this key",
                ),
                (
                    "token",
                    fe.token.is_some(),
                    "kind \"haproxy\" takes no token (HAProxy's runtime API has no authentication: keep it on a UNIX socket or a loopback address): remove this key",
                ),
            ],
        };
        for (field, present, message) in foreign {
            if *present {
                let k = format!("{key}.{field}");
                self.push(self.at(&k), &k, None, *message);
            }
        }
        match kind {
            FrontendDriverKind::Builtin => {
                if fe.control.is_none() {
                    let k = format!("{key}.control");
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        "missing required key `control`: a kind \"builtin\" frontend (the default) needs the IP:PORT of its control API, e.g. control = \"10.0.0.5:7100\"",
                    );
                }
                match &fe.token {
                    None => {
                        let k = format!("{key}.token");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            "missing required key `token`: a kind \"builtin\" frontend (the default) needs token = { file = \"/etc/warden/NAME.token\" } or { env = \"VAR\" }",
                        );
                    }
                    Some(t) => self.check_secret(&format!("{key}.token"), t),
                }
                let (Some(control), Some(token)) = (fe.control, fe.token.clone()) else {
                    return None;
                };
                Some(CheckedFrontend::Builtin(FrontendConfig { control, token }))
            }
            FrontendDriverKind::Haproxy => {
                let k = format!("{key}.runtime");
                let Some(r) = &fe.runtime else {
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        "missing required key `runtime`: a kind \"haproxy\" frontend needs the address of HAProxy's runtime API (a `stats socket ... level admin` line of haproxy.cfg), e.g. runtime = \"/run/haproxy/admin.sock\" or \"127.0.0.1:9999\"",
                    );
                    return None;
                };
                match RuntimeAddr::parse(r.get_ref()) {
                    Ok(runtime) => {
                        Some(CheckedFrontend::Haproxy(HaproxyFrontendConfig { runtime }))
                    }
                    Err(e) => {
                        self.push(r.span(), &k, Some(format!("{:?}", r.get_ref())), e);
                        None
                    }
                }
            }
        }
    }

    fn check_frontend_scheme(
        &mut self,
        name: &str,
        fs: &Spanned<FrontendScheme>,
        list: &[Spanned<String>],
        sites: &BTreeSet<String>,
        frontends: &BTreeSet<String>,
        frontend_kinds: &BTreeMap<String, FrontendDriverKind>,
    ) {
        let f = fs.get_ref();
        let key = format!("groups.{name}.frontend");
        let driver = *f.driver.get_ref();
        let dname = driver.as_str();
        if f.frontends.is_empty() {
            self.push(
                fs.span(),
                &format!("{key}.frontends"),
                None,
                format!("driver \"{dname}\" needs frontends = [\"NAME\", ...] naming [frontends.NAME] tables of kind \"{dname}\""),
            );
        }
        match driver {
            FrontendDriverKind::Builtin => {
                if f.listen.is_none() {
                    self.push(
                        fs.span(),
                        &format!("{key}.listen"),
                        None,
                        "driver \"builtin\" needs listen = \"ADDR:PORT\" (where each frontend accepts this group's users)",
                    );
                }
                for (field, present) in [
                    ("backend", f.backend.is_some()),
                    ("servers", !f.servers.is_empty()),
                ] {
                    if present {
                        let k = format!("{key}.{field}");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            format!("only driver \"haproxy\" uses {field}; driver \"builtin\" forwards to backends = {{ SITE = \"host:port\", ... }}: remove this key"),
                        );
                    }
                }
            }
            FrontendDriverKind::Haproxy => self.check_haproxy_scheme(&key, fs, list),
        }
        let mut seen = Vec::new();
        for (i, fe) in f.frontends.iter().enumerate() {
            let k = format!("{key}.frontends[{i}]");
            if !frontends.contains(fe.get_ref()) {
                let known: Vec<_> = frontends.iter().cloned().collect();
                self.push(
                    fe.span(),
                    &k,
                    Some(format!("{:?}", fe.get_ref())),
                    format!(
                        "unknown frontend; defined frontends: [{}]",
                        known.join(", ")
                    ),
                );
            }
            if let Some(kind) = frontend_kinds.get(fe.get_ref()).filter(|k| **k != driver) {
                self.push(
                    fe.span(),
                    &k,
                    Some(format!("{:?}", fe.get_ref())),
                    format!(
                        "frontend {:?} is kind \"{}\" but this group's driver is \"{dname}\"; list only frontends with kind = \"{dname}\", or change the driver",
                        fe.get_ref(),
                        kind.as_str()
                    ),
                );
            }
            if seen.contains(fe.get_ref()) {
                self.push(
                    fe.span(),
                    &k,
                    Some(format!("{:?}", fe.get_ref())),
                    "frontend listed twice",
                );
            }
            seen.push(fe.get_ref().clone());
        }
        if driver == FrontendDriverKind::Builtin {
            // (An unknown site is reported already; asking for its backend would mislead.)
            for s in list.iter().filter(|s| sites.contains(s.get_ref())) {
                if !f.backends.keys().any(|k| k.get_ref() == s.get_ref()) {
                    let k = format!("{key}.backends");
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        format!(
                            "no backend for site {:?}; give one \"host:port\" per site of the group",
                            s.get_ref()
                        ),
                    );
                }
            }
            for (k, v) in &f.backends {
                let bkey = fmt_path(&format!("{key}.backends"), &[Seg::Key(k.get_ref().clone())]);
                if !list.iter().any(|s| s.get_ref() == k.get_ref()) {
                    let sites: Vec<_> = list.iter().map(|s| s.get_ref().as_str()).collect();
                    self.push(
                        k.span(),
                        &bkey,
                        None,
                        format!(
                            "not a site of this group; the group's sites: [{}]",
                            sites.join(", ")
                        ),
                    );
                }
                if !host_port(v.get_ref()) {
                    self.push(
                        v.span(),
                        &bkey,
                        Some(format!("{:?}", v.get_ref())),
                        "must be host:port, e.g. \"10.1.0.10:8080\"",
                    );
                }
            }
        }
        if f.drain_timeout.is_zero() {
            self.positive(&format!("{key}.drain_timeout"));
        }
    }

    /// The keys of `[groups.NAME.frontend]` with driver "haproxy": `backend`,
    /// `servers`, and none of the builtin driver's.
    fn check_haproxy_scheme(
        &mut self,
        key: &str,
        fs: &Spanned<FrontendScheme>,
        list: &[Spanned<String>],
    ) {
        const NAMES: &str = "HAProxy names use only ASCII letters, digits, '-', '_', '.' and ':'";
        let f = fs.get_ref();
        let bkey = format!("{key}.backend");
        match &f.backend {
            None => self.push(
                fs.span(),
                &bkey,
                None,
                "driver \"haproxy\" needs backend = \"NAME\": the backend of haproxy.cfg that holds one server per site",
            ),
            Some(b) if !valid_haproxy_name(b.get_ref()) => self.push(
                b.span(),
                &bkey,
                Some(format!("{:?}", b.get_ref())),
                format!("not an HAProxy backend name; {NAMES}"),
            ),
            Some(_) => {}
        }
        if f.listen.is_some() {
            let k = format!("{key}.listen");
            self.push(
                self.at(&k),
                &k,
                self.value_at(&k),
                "driver \"haproxy\" does not use listen: the `bind` lines of haproxy.cfg decide where users connect; remove this key",
            );
        }
        if !f.backends.is_empty() {
            let k = format!("{key}.backends");
            self.push(
                self.at(&k),
                &k,
                None,
                "driver \"haproxy\" does not use backends: the server addresses are in haproxy.cfg (one `server` per site in the backend); name each site's server with servers = { SITE = \"SERVER\" } instead",
            );
        }
        let skey = format!("{key}.servers");
        for (site, server) in &f.servers {
            let k = fmt_path(&skey, &[Seg::Key(site.get_ref().clone())]);
            if !list.iter().any(|s| s.get_ref() == site.get_ref()) {
                let sites: Vec<_> = list.iter().map(|s| s.get_ref().as_str()).collect();
                self.push(
                    site.span(),
                    &k,
                    None,
                    format!(
                        "not a site of this group; the group's sites: [{}]",
                        sites.join(", ")
                    ),
                );
            }
            if !valid_haproxy_name(server.get_ref()) {
                self.push(
                    server.span(),
                    &k,
                    Some(format!("{:?}", server.get_ref())),
                    format!("not an HAProxy server name; {NAMES}"),
                );
            }
        }
        let mut taken: Vec<(&str, &str)> = Vec::new();
        for site in list {
            let site = site.get_ref().as_str();
            let server = f.server_of(site);
            if let Some((other, _)) = taken.iter().find(|(_, s)| *s == server) {
                let k = fmt_path(&skey, &[Seg::Key(site.to_string())]);
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{server:?}")),
                    format!("sites {other:?} and {site:?} both map to HAProxy server {server:?}; each site needs its own server (a site not listed in servers uses its own name)"),
                );
            }
            taken.push((site, server));
        }
    }

    fn check_dns(
        &mut self,
        name: &str,
        scheme: Scheme,
        d: &Spanned<DnsScheme>,
        list: &[Spanned<String>],
        sites: &BTreeSet<String>,
        fe_names: Option<Vec<String>>,
    ) {
        let dns = d.get_ref();
        let key = format!("groups.{name}.dns");
        if let Some(c) = &dns.credentials {
            self.check_secret(&format!("{key}.credentials"), c);
        }
        if dns.name.trim().is_empty() {
            let k = format!("{key}.name");
            self.push(
                self.at(&k),
                &k,
                Some("\"\"".into()),
                "must be the record users resolve, e.g. \"www.example.net\"",
            );
        }
        if dns.ttl.is_zero() {
            self.positive(&format!("{key}.ttl"));
        }
        match dns.provider {
            DnsProviderKind::Rfc2136 => {
                for (field, val, example) in [
                    ("server", &dns.server, "\"ns1.example.net:53\""),
                    ("zone", &dns.zone, "\"example.net\""),
                ] {
                    if val.as_deref().is_none_or(|s| s.trim().is_empty()) {
                        let k = format!("{key}.{field}");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            format!("provider \"rfc2136\" needs {field} = {example}"),
                        );
                    }
                }
            }
            DnsProviderKind::Noip | DnsProviderKind::Dyndns2 => {
                if dns.credentials.is_none() {
                    let k = format!("{key}.credentials");
                    self.push(self.at(&k), &k, None, "this provider needs credentials = { file = \"/etc/warden/NAME\" } or { env = \"VAR\" }");
                }
                if dns.provider == DnsProviderKind::Dyndns2 && dns.server.is_none() {
                    let k = format!("{key}.server");
                    self.push(
                        self.at(&k),
                        &k,
                        None,
                        "provider \"dyndns2\" needs server = \"https://members.example.net/nic/update\" (the update URL)",
                    );
                }
                if let Some(url) = &dns.server {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        let k = format!("{key}.server");
                        self.push(
                            self.at(&k),
                            &k,
                            Some(format!("{url:?}")),
                            "must be the update URL, e.g. \"https://dynupdate.no-ip.com/nic/update\"",
                        );
                    }
                }
                for (field, v) in [("key_name", &dns.key_name), ("algorithm", &dns.algorithm)] {
                    if v.is_some() {
                        let k = format!("{key}.{field}");
                        self.push(
                            self.at(&k),
                            &k,
                            None,
                            "only provider \"rfc2136\" uses a TSIG key; remove this key",
                        );
                    }
                }
            }
        }
        if dns.provider == DnsProviderKind::Rfc2136 {
            if let Some(server) = &dns.server {
                if let Err(e) = crate::model::dns_server_syntax(server) {
                    let k = format!("{key}.server");
                    self.push(self.at(&k), &k, Some(format!("{server:?}")), e);
                }
            }
            if let Some(alg) = &dns.algorithm {
                if !crate::model::TSIG_ALGORITHMS.contains(&alg.as_str()) {
                    let k = format!("{key}.algorithm");
                    self.push(
                        self.at(&k),
                        &k,
                        Some(format!("{alg:?}")),
                        format!(
                            "unknown TSIG algorithm; expected one of {}",
                            crate::model::TSIG_ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
            if dns.user_agent.is_some() {
                let k = format!("{key}.user_agent");
                self.push(
                    self.at(&k),
                    &k,
                    None,
                    "only providers \"noip\" and \"dyndns2\" send a User-Agent; remove this key",
                );
            }
        }
        if let Some(ua) = &dns.user_agent {
            // No-IP: "Company NameOfProgram/Version contact@example".
            let parts: Vec<&str> = ua.split_whitespace().collect();
            if parts.len() < 3 || !parts[1].contains('/') {
                let k = format!("{key}.user_agent");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{ua:?}")),
                    "must have the form \"Company NameOfProgram/Version contact@example\" (No-IP blocks other forms)",
                );
            }
        }
        for (i, ns) in dns.nameservers.iter().enumerate() {
            if let Err(e) = crate::model::dns_server_syntax(ns) {
                let k = format!("{key}.nameservers[{i}]");
                self.push(self.at(&k), &k, Some(format!("{ns:?}")), e);
            }
        }
        for (i, a) in dns.aliases.iter().enumerate() {
            if a.trim().is_empty() || a.contains(char::is_whitespace) || a.contains(',') {
                let k = format!("{key}.aliases[{i}]");
                self.push(
                    self.at(&k),
                    &k,
                    Some(format!("{a:?}")),
                    "must be a hostname, e.g. \"www2.example.net\"",
                );
            }
        }
        if dns.timeout.is_zero() {
            self.positive(&format!("{key}.timeout"));
        }
        // Which names `addresses` is keyed by: sites (dns) or the group's
        // frontends (hybrid: users resolve to a frontend, which picks the site).
        let (what, expected): (&str, Vec<String>) = match scheme {
            Scheme::Hybrid => match fe_names {
                Some(f) => ("frontend", f),
                None => return, // already reported: hybrid needs a frontend table
            },
            _ => ("site", list.iter().map(|s| s.get_ref().clone()).collect()),
        };
        let akey = format!("{key}.addresses");
        // (An unknown site is reported already; asking for its address would mislead.)
        for n in expected
            .iter()
            .filter(|n| what != "site" || sites.contains(*n))
        {
            if !dns.addresses.contains_key(n) {
                self.push(
                    self.at(&akey),
                    &akey,
                    None,
                    format!(
                        "no address for {what} {n:?}; give one address per {what} of the group"
                    ),
                );
            }
        }
        for (k, v) in &dns.addresses {
            let ak = fmt_path(&akey, &[Seg::Key(k.clone())]);
            if !expected.contains(k) {
                self.push(
                    self.at(&ak),
                    &ak,
                    Some(format!("{v:?}")),
                    format!("not a {what} of this group; keys of addresses are the group's {what}s: [{}]", expected.join(", ")),
                );
            }
            if v.trim().is_empty() {
                self.push(
                    self.at(&ak),
                    &ak,
                    Some("\"\"".into()),
                    "must be an address, e.g. \"10.1.0.10\"",
                );
            } else if let Err(e) = crate::model::parse_record_addresses(v) {
                self.push(
                    self.at(&ak),
                    &ak,
                    Some(format!("{v:?}")),
                    format!("{e}; expected \"10.1.0.10\", \"fd00::10\" or \"10.1.0.10, fd00::10\""),
                );
            }
        }
    }
}

/// Site, group and frontend names.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"[orchestrator]
listen = "127.0.0.1:7000"
data_dir = "/var/lib/warden"
operator_token = { env = "T" }

[sites.a]
agent_token = { env = "T" }

[sites.b]
agent_token = { env = "T" }

[frontends.fe1]
control = "127.0.0.1:7100"
token = { env = "T" }

[groups.web]
sites = ["a", "b"]
scheme = "frontend"

[groups.web.frontend]
driver = "builtin"
frontends = ["fe1"]
listen = "127.0.0.1:8000"
backends = { a = "127.0.0.1:8080", b = "127.0.0.1:8081" }

[groups.web.replication]
plan = "none"
"#;

    fn problems(extra: &str) -> (String, Vec<Problem>) {
        let text = format!("{BASE}{extra}");
        match parse(&text, Path::new("guard.conf")) {
            Err(ConfigError::Invalid(p)) => (text, p),
            other => panic!("expected problems for {extra:?}, got {other:?}"),
        }
    }

    /// (line, col) of the first `needle` in `text`, 1-based.
    fn pos(text: &str, needle: &str) -> (usize, usize) {
        let at = text.find(needle).unwrap();
        let before = &text[..at];
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        (before.matches('\n').count() + 1, at - line_start + 1)
    }

    #[test]
    fn mass_delete_guard_keys_default_and_are_checked_where_they_are() {
        let c = parse(BASE, Path::new("guard.conf")).unwrap();
        let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
        assert_eq!((r.max_delete_share, r.max_delete_count), (0.10, 100));
        let c = parse(
            &format!("{BASE}max_delete_share = 1.0\nmax_delete_count = 0\n"),
            Path::new("guard.conf"),
        )
        .unwrap();
        let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
        assert_eq!((r.max_delete_share, r.max_delete_count), (1.0, 0));

        for bad in ["1.5", "-0.1", "nan", "inf"] {
            let (text, p) = problems(&format!("max_delete_share = {bad}\n"));
            let e = p
                .iter()
                .find(|x| x.key == "groups.web.replication.max_delete_share")
                .unwrap_or_else(|| panic!("{bad}: {p:?}"));
            assert!(e.message.contains("0.0 to 1.0"), "{}", e.message);
            assert_eq!(
                (e.line, e.col),
                pos(&text, &format!("{bad}\n")),
                "{bad}: {e}"
            );
        }
        let (text, p) = problems("max_delete_count = -1\n");
        let e = p
            .iter()
            .find(|x| x.key == "groups.web.replication.max_delete_count")
            .unwrap_or_else(|| panic!("{p:?}"));
        assert_eq!((e.line, e.col), pos(&text, "-1\n"), "{e}");
    }

    #[test]
    fn rsync_attribute_keys_default_on_and_belong_to_the_rsync_plan() {
        let rsync = BASE.replace("plan = \"none\"", "plan = \"rsync\"");
        let sites = "\n[groups.web.replication.sites.a]\npath = \"/srv/a\"\nmodule = \"h/m\"\nuser = \"u\"\npassword = { env = \"X\" }\n[groups.web.replication.sites.b]\npath = \"/srv/b\"\nmodule = \"h/m\"\nuser = \"u\"\npassword = { env = \"X\" }\n";
        let parsed =
            |extra: &str| parse(&format!("{rsync}{extra}{sites}"), Path::new("attrs.conf"));
        let get = |c: &crate::Config| {
            let r = c.groups["web"].replication.as_ref().unwrap().get_ref();
            (
                r.rsync_xattrs(),
                r.rsync_acls(),
                r.rsync_hard_links(),
                r.rsync_sparse(),
            )
        };
        std::env::set_var("X", "pw");
        assert_eq!(get(&parsed("").unwrap()), (true, true, true, true));
        let c =
            parsed("xattrs = true\nacls = false\nhard_links = false\nsparse = false\n").unwrap();
        assert_eq!(get(&c), (true, false, false, false));
        // Not a boolean: the key, where it is.
        let text = format!("{rsync}xattrs = \"yes\"\n{sites}");
        match parse(&text, Path::new("attrs.conf")) {
            Err(ConfigError::Invalid(p)) => {
                let e = p
                    .iter()
                    .find(|x| x.key.ends_with("xattrs"))
                    .unwrap_or_else(|| panic!("{p:?}"));
                assert_eq!((e.line, e.col), pos(&text, "\"yes\""), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // Another plan: the key does not belong there.
        for k in ["xattrs", "acls", "hard_links", "sparse"] {
            let (text, p) = problems(&format!("{k} = true\n"));
            let e = p
                .iter()
                .find(|x| x.key == format!("groups.web.replication.{k}"))
                .unwrap_or_else(|| panic!("{k}: {p:?}"));
            assert!(e.message.contains("does not use this key"), "{e}");
            let (line, col) = pos(&text, &format!("{k} = true"));
            assert_eq!((e.line, e.col), (line, col + k.len() + 3), "{e}");
        }
    }
}
