//! Reading failover.conf: parse each table on its own so that every problem in
//! the file is reported at once, then check cross-references.
//!
//! Each problem carries file:line:col, the dotted key, the offending value
//! (masked for secret keys) and what is allowed.

use std::collections::BTreeMap;
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
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.key)?;
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
    let mut cx = Cx {
        text,
        path: path.to_path_buf(),
        problems: Vec::new(),
    };
    let cfg = cx.parse_all();
    if cx.problems.is_empty() {
        if let Some(cfg) = cfg {
            return Ok(cfg);
        }
    }
    cx.problems.sort_by_key(|p| (p.line, p.col));
    Err(ConfigError::Invalid(cx.problems))
}

/// Keys whose values are secrets: never echoed.
const SECRET_WORDS: &[&str] = &["token", "password", "secret", "credentials", "key"];

struct Cx<'t> {
    text: &'t str,
    path: PathBuf,
    problems: Vec<Problem>,
}

impl Cx<'_> {
    fn pos(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
        (line, col)
    }

    fn push(&mut self, span: Range<usize>, key: &str, value: Option<String>, message: impl Into<String>) {
        let (line, col) = self.pos(span.start);
        let secret = SECRET_WORDS.iter().any(|w| key.to_ascii_lowercase().contains(w));
        let value = value.map(|v| if secret { "\"****\"".to_string() } else { v });
        self.problems.push(Problem {
            file: self.path.clone(),
            line,
            col,
            key: key.to_string(),
            value,
            message: message.into(),
        });
    }

    fn snippet(&self, span: &Range<usize>) -> Option<String> {
        let s = self.text.get(span.clone())?.trim();
        if s.is_empty() || s.contains('\n') || s.len() > 80 {
            return None;
        }
        Some(s.to_string())
    }

    /// Deserialize one value, turning a serde error into a problem under `key`.
    fn de<T: DeserializeOwned>(&mut self, key: &str, value: &Spanned<DeValue<'_>>) -> Option<T> {
        let v = value.clone();
        match T::deserialize(ValueDeserializer::from(v)) {
            Ok(t) => Some(t),
            Err(e) => {
                let span = e.span().unwrap_or_else(|| value.span());
                let sub = self.snippet(&span);
                let message = e.message().trim().to_string();
                // Name the innermost key when serde tells it.
                self.push(span, key, sub, message);
                None
            }
        }
    }

    fn table<'a, 'i>(&mut self, key: &str, v: &'a Spanned<DeValue<'i>>) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.push(
                    v.span(),
                    key,
                    self.snippet(&v.span()),
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// A `[section.NAME]` map: each entry parsed on its own.
    fn named<T: DeserializeOwned>(&mut self, section: &str, v: Option<&Spanned<DeValue<'_>>>) -> BTreeMap<String, (T, Range<usize>)> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        let Some(t) = self.table(section, v) else { return out };
        for (name, val) in t.iter() {
            let key = format!("{section}.{}", name.get_ref());
            if !valid_name(name.get_ref()) {
                self.push(
                    name.span(),
                    &key,
                    Some(format!("{:?}", name.get_ref())),
                    "names may contain only ASCII letters, digits, '-' and '_' (1-63 characters)",
                );
                continue;
            }
            if let Some(parsed) = self.de::<T>(&key, val) {
                out.insert(name.get_ref().to_string(), (parsed, val.span()));
            }
        }
        out
    }

    fn parse_all(&mut self) -> Option<Config> {
        let root = match DeTable::parse(self.text) {
            Ok(t) => t,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.push(span, "(syntax)", None, e.message().trim().to_string());
                return None;
            }
        };
        let root_span = root.span();
        let root = root.into_inner();
        let mut sections: BTreeMap<&str, &Spanned<DeValue<'_>>> = BTreeMap::new();
        const ALLOWED: &str = "allowed: orchestrator, detection, sites, frontends, groups";
        for (k, v) in root.iter() {
            match k.get_ref().as_ref() {
                "orchestrator" | "detection" | "sites" | "frontends" | "groups" => {
                    sections.insert(
                        match k.get_ref().as_ref() {
                            "orchestrator" => "orchestrator",
                            "detection" => "detection",
                            "sites" => "sites",
                            "frontends" => "frontends",
                            _ => "groups",
                        },
                        v,
                    );
                }
                other => {
                    let key = other.to_string();
                    self.push(k.span(), &key, None, format!("unknown top-level key; {ALLOWED}"));
                }
            }
        }

        let orchestrator: Option<OrchestratorConfig> = match sections.get("orchestrator") {
            Some(v) => self.de("orchestrator", v),
            None => {
                self.push(root_span.start..root_span.start, "orchestrator", None, "missing table [orchestrator] (needs listen, data_dir, operator_token)");
                None
            }
        };
        let detection: Option<Detection> = match sections.get("detection") {
            Some(v) => self.de("detection", v),
            None => Some(Detection::default()),
        };
        let sites: BTreeMap<String, (SiteConfig, Range<usize>)> = self.named("sites", sections.get("sites").copied());
        let frontends: BTreeMap<String, (FrontendConfig, Range<usize>)> = self.named("frontends", sections.get("frontends").copied());
        let groups: BTreeMap<String, (GroupConfig, Range<usize>)> = self.named("groups", sections.get("groups").copied());

        if let Some(o) = &orchestrator {
            self.check_secret("orchestrator.operator_token", sections["orchestrator"].span(), &o.operator_token);
            if o.max_body_bytes < 1024 {
                self.push(sections["orchestrator"].span(), "orchestrator.max_body_bytes", Some(o.max_body_bytes.to_string()), "must be at least 1024");
            }
        }
        if let Some(d) = &detection {
            let span = sections.get("detection").map(|v| v.span()).unwrap_or(0..0);
            if d.fall == 0 {
                self.push(span.clone(), "detection.fall", Some("0".into()), "must be at least 1");
            }
            if d.rise == 0 {
                self.push(span.clone(), "detection.rise", Some("0".into()), "must be at least 1");
            }
            if d.interval.is_zero() {
                self.push(span.clone(), "detection.interval", Some("0s".into()), "must be a positive duration, e.g. \"500ms\"");
            }
            if d.agent_timeout <= d.interval {
                self.push(
                    span,
                    "detection.agent_timeout",
                    Some(humantime::format_duration(d.agent_timeout).to_string()),
                    format!("must be longer than detection.interval ({})", humantime::format_duration(d.interval)),
                );
            }
        }
        for (name, (site, span)) in &sites {
            self.check_secret(&format!("sites.{name}.agent_token"), span.clone(), &site.agent_token);
            for (i, c) in site.checks.iter().enumerate() {
                self.check_check(&format!("sites.{name}.checks[{i}]"), c);
            }
            for (i, c) in site.endpoints.iter().enumerate() {
                self.check_check(&format!("sites.{name}.endpoints[{i}]"), c);
                if c.kind.get_ref() == &CheckKind::Command {
                    self.push(c.kind.span(), &format!("sites.{name}.endpoints[{i}].kind"), Some("\"command\"".into()), "endpoints are probed from other hosts: allowed kinds are \"http\" and \"tcp\"");
                }
            }
            for (list, hooks) in [("promote", &site.promote), ("demote", &site.demote)] {
                for (i, h) in hooks.iter().enumerate() {
                    if h.command.get_ref().is_empty() {
                        self.push(h.command.span(), &format!("sites.{name}.{list}[{i}].command"), Some("[]".into()), "must name a program: [\"/path/to/prog\", \"arg\", ...]");
                    }
                }
            }
        }
        for (name, (fe, span)) in &frontends {
            self.check_secret(&format!("frontends.{name}.token"), span.clone(), &fe.token);
        }
        for (name, (g, _)) in &groups {
            self.check_group(name, g, &sites, &frontends);
        }

        Some(Config {
            path: self.path.clone(),
            orchestrator: orchestrator?,
            detection: detection?,
            sites: sites.into_iter().map(|(k, (v, _))| (k, v)).collect(),
            frontends: frontends.into_iter().map(|(k, (v, _))| (k, v)).collect(),
            groups: groups.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        })
    }

    fn check_secret(&mut self, key: &str, span: Range<usize>, s: &SecretRef) {
        match (&s.file, &s.env) {
            (Some(_), Some(_)) => self.push(span, key, None, "give exactly one of `file` or `env`, not both"),
            (None, None) => self.push(span, key, None, "give where the secret comes from: { file = \"/path\" } or { env = \"VAR\" }"),
            (None, Some(e)) if e.is_empty() => self.push(span, &format!("{key}.env"), Some("\"\"".into()), "must name an environment variable"),
            _ => {}
        }
    }

    fn check_check(&mut self, key: &str, c: &CheckSpec) {
        let kspan = c.kind.span();
        match c.kind.get_ref() {
            CheckKind::Http => match &c.url {
                None => self.push(kspan.clone(), &format!("{key}.url"), None, "kind \"http\" needs url = \"http://host:port/path\""),
                Some(u) => {
                    let s = u.get_ref();
                    if !(s.starts_with("http://") || s.starts_with("https://")) || s.len() < 10 {
                        self.push(u.span(), &format!("{key}.url"), Some(format!("{s:?}")), "must be an http:// or https:// URL");
                    }
                }
            },
            CheckKind::Tcp => match &c.address {
                None => self.push(kspan.clone(), &format!("{key}.address"), None, "kind \"tcp\" needs address = \"host:port\""),
                Some(a) => {
                    let ok = a.get_ref().rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                    if !ok {
                        self.push(a.span(), &format!("{key}.address"), Some(format!("{:?}", a.get_ref())), "must be host:port");
                    }
                }
            },
            CheckKind::Command => match &c.command {
                None => self.push(kspan.clone(), &format!("{key}.command"), None, "kind \"command\" needs command = [\"/path/to/prog\", \"arg\", ...]"),
                Some(cmd) if cmd.get_ref().is_empty() => self.push(cmd.span(), &format!("{key}.command"), Some("[]".into()), "must name a program"),
                _ => {}
            },
        }
        if c.timeout.is_zero() {
            self.push(kspan.clone(), &format!("{key}.timeout"), Some("0s".into()), "must be a positive duration");
        }
    }

    fn check_group(
        &mut self,
        name: &str,
        g: &GroupConfig,
        sites: &BTreeMap<String, (SiteConfig, Range<usize>)>,
        frontends: &BTreeMap<String, (FrontendConfig, Range<usize>)>,
    ) {
        let list = g.sites.get_ref();
        if list.len() < 2 {
            self.push(g.sites.span(), &format!("groups.{name}.sites"), self.snippet(&g.sites.span()), "a group needs at least two sites (primary first, then standbys)");
        }
        let mut seen = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let key = format!("groups.{name}.sites[{i}]");
            if !sites.contains_key(s.get_ref()) {
                let known: Vec<_> = sites.keys().cloned().collect();
                self.push(s.span(), &key, Some(format!("{:?}", s.get_ref())), format!("unknown site; defined sites: [{}]", known.join(", ")));
            }
            if seen.contains(s.get_ref()) {
                self.push(s.span(), &key, Some(format!("{:?}", s.get_ref())), "site listed twice");
            }
            seen.push(s.get_ref().clone());
        }
        let scheme = *g.scheme.get_ref();
        let need_fe = matches!(scheme, Scheme::Frontend | Scheme::Hybrid);
        let need_dns = matches!(scheme, Scheme::Dns | Scheme::Hybrid);
        if need_fe && g.frontend.is_none() {
            self.push(g.scheme.span(), &format!("groups.{name}.frontend"), None, format!("scheme \"{}\" needs a [groups.{name}.frontend] table", scheme.as_str()));
        }
        if need_dns && g.dns.is_none() {
            self.push(g.scheme.span(), &format!("groups.{name}.dns"), None, format!("scheme \"{}\" needs a [groups.{name}.dns] table", scheme.as_str()));
        }
        if !need_fe {
            if let Some(f) = &g.frontend {
                self.push(f.span(), &format!("groups.{name}.frontend"), None, format!("scheme \"{}\" does not use a frontend table; remove it or use scheme = \"frontend\" or \"hybrid\"", scheme.as_str()));
            }
        }
        if !need_dns {
            if let Some(d) = &g.dns {
                self.push(d.span(), &format!("groups.{name}.dns"), None, format!("scheme \"{}\" does not use a dns table; remove it or use scheme = \"dns\" or \"hybrid\"", scheme.as_str()));
            }
        }
        if let Some(fs) = &g.frontend {
            let f = fs.get_ref();
            let key = format!("groups.{name}.frontend");
            if *f.driver.get_ref() == FrontendDriverKind::Builtin {
                if f.frontends.is_empty() {
                    self.push(fs.span(), &format!("{key}.frontends"), None, "driver \"builtin\" needs frontends = [\"NAME\", ...] naming [frontends.NAME] tables");
                }
                if f.listen.is_none() {
                    self.push(fs.span(), &format!("{key}.listen"), None, "driver \"builtin\" needs listen = \"ADDR:PORT\" (where each frontend accepts this group's users)");
                }
            }
            for (i, fe) in f.frontends.iter().enumerate() {
                if !frontends.contains_key(fe.get_ref()) {
                    let known: Vec<_> = frontends.keys().cloned().collect();
                    self.push(fe.span(), &format!("{key}.frontends[{i}]"), Some(format!("{:?}", fe.get_ref())), format!("unknown frontend; defined frontends: [{}]", known.join(", ")));
                }
            }
            for s in list {
                if !f.backends.keys().any(|k| k.get_ref() == s.get_ref()) {
                    self.push(fs.span(), &format!("{key}.backends"), None, format!("no backend for site {:?}; give one \"host:port\" per site of the group", s.get_ref()));
                }
            }
            for (k, v) in &f.backends {
                if !list.iter().any(|s| s.get_ref() == k.get_ref()) {
                    self.push(k.span(), &format!("{key}.backends.{}", k.get_ref()), None, "not a site of this group");
                }
                let ok = v.get_ref().rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !ok {
                    self.push(v.span(), &format!("{key}.backends.{}", k.get_ref()), Some(format!("{:?}", v.get_ref())), "must be host:port");
                }
            }
        }
        if let Some(d) = &g.dns {
            if let Some(c) = &d.get_ref().credentials {
                self.check_secret(&format!("groups.{name}.dns.credentials"), d.span(), c);
            }
        }
    }
}

/// Site, group and frontend names.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

