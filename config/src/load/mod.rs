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

/// Largest config file read: 10,000 groups of two sites take about 3.7 MB;
/// a larger file (or a huge array in it) would only cost memory (parsing
/// takes about 80 times the file's size) before it is refused.
pub const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// Read and validate a config file: at most [`MAX_CONFIG_BYTES`], UTF-8
/// (the first byte that is not gets its line and column).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, false)
}

/// What `warden check-config` checks: [`load`], plus what the file shows
/// that only a deployment would find: two roles given one token reference
/// (the same file or the same variable: `warden orchestrator`'s start
/// refuses it), and an address other hosts dial given as port 0 or as a
/// wildcard IP (`dial`), each at its line and column. Loading for a process stays [`load`]: an agent or a
/// frontend does not need every role's token to be its own.
pub fn check_deployment(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, true)
}

fn load_with(path: &Path, deployment: bool) -> Result<Config, ConfigError> {
    use std::io::Read;
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let problem = |line, col, message: String| {
        ConfigError::Invalid(vec![Problem {
            file: path.to_path_buf(),
            line,
            col,
            key: "(file)".into(),
            value: None,
            message,
        }])
    };
    // A FIFO (or a device) would block the open or the read for ever: only
    // a regular file (or a link to one) is read.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() && !meta.is_dir() {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let what = if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(problem(
            1,
            1,
            format!("is {what}, not a regular file: give the config file itself"),
        ));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(problem(
            1,
            1,
            format!(
                "the file is larger than {MAX_CONFIG_BYTES} bytes; even 10,000 groups take under 4 MiB"
            ),
        ));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let mut col = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            // A byte order mark is no column an editor shows.
            if line == 1 && good.starts_with("\u{feff}".as_bytes()) {
                col -= 1;
            }
            return Err(problem(
                line,
                col,
                "not UTF-8: a config file is UTF-8 text".into(),
            ));
        }
    };
    parse_with(&text, path, deployment)
}

/// Parse and validate config text; `path` is used in messages only.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_with(text, path, false)
}

/// [`parse`]; `deployment`: the checks of [`check_deployment`] too.
fn parse_with(text: &str, path: &Path, deployment: bool) -> Result<Config, ConfigError> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut cx = Cx {
        text,
        path: path.to_path_buf(),
        root: &root,
        problems: Vec::new(),
        deser: BTreeSet::new(),
        deployment,
        secret_vars: BTreeSet::new(),
    };
    let cfg = if syntax.is_empty() {
        cx.parse_all()
    } else {
        // The recovered tree may be missing whole tables; validating it would
        // only add confusing follow-on problems.
        let mut places = SpanlessPlaces::new(text);
        for e in &syntax {
            let span = e.span().unwrap_or_else(|| places.next(e.message()));
            let message = match e.message().trim() {
                "duplicate key" => duplicate(text, &span),
                m => m.to_string(),
            };
            cx.push(span, "(syntax)", None, format!("invalid TOML: {message}"));
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

/// toml's "duplicate key", said with what is written twice and where it
/// was first: a `[table]` header (its first line), or a key (set once in
/// its table).
fn duplicate(text: &str, span: &Range<usize>) -> String {
    let start = span.start.min(text.len());
    if !text.is_char_boundary(start) {
        return "duplicate key: a key or [table] written twice; write it once".to_string();
    }
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[line_start..line_end].trim();
    let header = |l: &str| -> Option<String> {
        let l = l.split('#').next()?.trim();
        (l.starts_with('[') && l.ends_with(']')).then(|| l.to_string())
    };
    if let Some(h) = header(line) {
        let first = text[..line_start]
            .lines()
            .position(|l| header(l).as_deref() == Some(h.as_str()));
        return match first {
            Some(n) => format!(
                "duplicate key: the table {h} is written twice (first at line {}); write it once, with all its keys",
                n + 1
            ),
            None => format!("duplicate key: the table {h} is defined already; write it once, with all its keys"),
        };
    }
    match text
        .get(span.clone())
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        Some(k) if k.len() <= 64 && !k.contains('\n') => {
            format!("duplicate key: {k} is set twice in its table; set it once")
        }
        _ => "duplicate key: a key set twice in its table; set it once".to_string(),
    }
}

/// Where the syntax errors that toml gives no place for (its recursion
/// limit on a deeply dotted key or header) begin, in the order toml lists
/// them: the `k`-th error with a message is at the first line at which the
/// text up to it holds `k` such errors, found by halving (each try parses
/// a prefix, remembered for the next error). Only the first
/// [`SpanlessPlaces::AT_MOST`] are searched for, so that a file full of
/// them still takes a few parses; later ones are put where the last one
/// found is. The start of the file when no prefix holds the error.
struct SpanlessPlaces<'t> {
    text: &'t str,
    /// The end of every line (past its `\n`), and of the text.
    ends: Vec<usize>,
    /// The messages of the spanless errors of each prefix parsed, by end.
    parsed: BTreeMap<usize, Vec<String>>,
    /// How many errors of each message were placed, and the index in
    /// `ends` of the last one's line.
    placed: BTreeMap<String, (usize, usize)>,
    searched: usize,
    last: Range<usize>,
}

impl<'t> SpanlessPlaces<'t> {
    const AT_MOST: usize = 8;

    fn new(text: &'t str) -> Self {
        let ends = text
            .match_indices('\n')
            .map(|(i, _)| i + 1)
            .chain(std::iter::once(text.len()))
            .collect();
        SpanlessPlaces {
            text,
            ends,
            parsed: BTreeMap::new(),
            placed: BTreeMap::new(),
            searched: 0,
            last: 0..0,
        }
    }

    /// How many spanless errors with `message` the text up to `end` holds.
    fn count(&mut self, end: usize, message: &str) -> usize {
        let text = self.text;
        self.parsed
            .entry(end)
            .or_insert_with(|| {
                DeTable::parse_recoverable(&text[..end])
                    .1
                    .iter()
                    .filter(|e| e.span().is_none())
                    .map(|e| e.message().to_string())
                    .collect()
            })
            .iter()
            .filter(|m| *m == message)
            .count()
    }

    /// The place of the next spanless error with `message`.
    fn next(&mut self, message: &str) -> Range<usize> {
        if self.searched >= Self::AT_MOST {
            return self.last.clone();
        }
        self.searched += 1;
        let (before, from) = self.placed.get(message).copied().unwrap_or((0, 0));
        let k = before + 1;
        // The first line end whose prefix holds k of them (none before the
        // line of the previous one).
        let (mut lo, mut hi) = (from, self.ends.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.count(self.ends[mid], message) >= k {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let Some(&end) = self.ends.get(lo) else {
            self.last = 0..0;
            return 0..0;
        };
        self.placed.insert(message.to_string(), (k, lo));
        let start = if lo == 0 { 0 } else { self.ends[lo - 1] };
        let line = &self.text[start..end];
        let indent = line.len() - line.trim_start().len();
        self.last = start + indent..end;
        self.last.clone()
    }
}

mod backends;
mod checks;
mod common;
mod dial;
mod dns;
mod engine;
mod frontends;
mod groups;
mod identity;
mod keystone;
mod loops;
mod notify;
mod orchestrator;
mod probed;
mod replication;
mod report_size;
mod schemes;
mod shared;
mod shared_data;
mod sites;
mod table_lists;
mod tables;
#[cfg(test)]
mod tests;
mod timing;
mod tokens;
mod zone_ids;

use engine::*;
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
    /// The checks of [`check_deployment`] too.
    deployment: bool,
    /// The variable of every secret reference with `env` (see
    /// [`Config::secret_vars`]), gathered by `check_secret`.
    secret_vars: BTreeSet<String>,
}

/// Site, group and frontend names.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
