//! The generic "every problem at once" diagnostics engine: locating a key in
//! the parsed tree by its span, masking secret values, wording serde's
//! complaints for people, and deserialising a table again without a bad key
//! until it succeeds. Knows nothing of failover.conf's tables.
//!
//! This module owns the recording of problems ([`Cx::add`]: position,
//! masking) and the deserialising of one table until it succeeds
//! ([`Cx::de`]); its submodules own the tree paths, the masking, the
//! wording and the value shapes it uses.

use super::*;

mod mask;
mod tree;
mod values;
mod wording;

pub(super) use mask::*;
pub(super) use tree::*;
pub(super) use values::*;
pub(super) use wording::*;

/// A byte order mark, which some editors write at the start of a UTF-8 file.
pub(super) const BOM: char = '\u{feff}';

/// Rounds of "report, remove the bad key, try again" per table.
pub(super) const MAX_ROUNDS: usize = 64;

impl<'t, 'r> Cx<'t, 'r> {
    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn pos(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let mut col = before[line_start..].chars().count() + 1;
        // A byte order mark (which toml skips) is no column an editor shows.
        if line == 1 && offset > 0 && self.text.starts_with(BOM) {
            col -= 1;
        }
        (line, col)
    }

    /// Did deserialisation already report `key` or something inside it?
    pub(super) fn covered(&self, key: &str) -> bool {
        self.deser.iter().any(|k| {
            k.strip_prefix(key).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        })
    }

    /// Record a problem found while deserialising.
    pub(super) fn push_de(
        &mut self,
        span: Range<usize>,
        key: &str,
        value: Option<String>,
        message: String,
    ) {
        self.deser.insert(key.to_string());
        self.add(span, key, value, message);
    }

    /// Record a problem found by a check after deserialising, unless it only
    /// repeats one serde reported.
    pub(super) fn push(
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
    pub(super) fn add(
        &mut self,
        span: Range<usize>,
        key: &str,
        value: Option<String>,
        message: String,
    ) {
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
            value.map(|v| shorten(&mask_assignments(&v)))
        };
        let message = mask_assignments(&message);
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
    pub(super) fn snippet(&self, span: &Range<usize>) -> Option<String> {
        let s = self.text.get(span.clone())?.trim();
        if s.is_empty() || s.contains('\n') || s.chars().count() > 80 {
            return None;
        }
        Some(s.to_string())
    }

    /// What to show as the value of `node`: scalars and inline arrays/tables,
    /// not `[header]` tables.
    pub(super) fn shown(&self, node: &Spanned<DeValue<'_>>) -> Option<String> {
        let s = self.snippet(&node.span())?;
        match node.get_ref() {
            DeValue::Table(_) if !s.starts_with('{') => None,
            DeValue::Array(_) if s.starts_with("[[") => None,
            _ => Some(s),
        }
    }

    /// Span of the value at a dotted key, or of the nearest enclosing value
    /// that exists (so a defaulted key points at its table).
    pub(super) fn at(&self, key: &str) -> Range<usize> {
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
    pub(super) fn value_at(&self, key: &str) -> Option<String> {
        let node = get(self.root, &parse_path(key))?;
        self.shown(node)
    }

    /// Whether the file writes the dotted `key`: for a key with a default,
    /// whose parsed value cannot tell.
    pub(in crate::load) fn written(&self, key: &str) -> bool {
        get(self.root, &parse_path(key)).is_some()
    }

    /// Each key of `base` given where nothing reads it (`(name, given,
    /// read)` with `given && !read`) is refused at its place, saying `why`:
    /// a key taken and ignored would look like part of what runs.
    pub(in crate::load) fn refuse_unread<'k>(
        &mut self,
        base: &str,
        keys: impl IntoIterator<Item = (&'k str, bool, bool)>,
        why: &str,
    ) {
        for (name, given, read) in keys {
            if given && !read {
                let k = format!("{base}.{name}");
                self.push(self.at(&k), &k, None, why);
            }
        }
    }

    /// Deserialize one table; every serde error becomes a problem under its
    /// precise dotted key (see the module doc).
    ///
    /// Returns the value when the table could be built, possibly with defaults
    /// in place of reported bad keys (so cross-reference checks can still run),
    /// and `None` when a required key is missing or wrong.
    pub(super) fn de<T: DeserializeOwned>(
        &mut self,
        base: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<T> {
        let mut v = value.clone();
        if !self.refuse_table_lists(base, &mut v) {
            return None;
        }
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

    pub(super) fn table<'a>(
        &mut self,
        key: &str,
        v: &'a Spanned<DeValue<'t>>,
    ) -> Option<&'a DeTable<'t>> {
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
    pub(super) fn named<T: DeserializeOwned>(
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
}
