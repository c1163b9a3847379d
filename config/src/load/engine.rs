//! The generic "every problem at once" diagnostics engine: locating a key in
//! the parsed tree by its span, masking secret values, wording serde's
//! complaints for people, and deserialising a table again without a bad key
//! until it succeeds. Knows nothing of failover.conf's tables.

use super::*;

/// Keys whose values are secrets: never echoed.
pub(super) const SECRET_WORDS: &[&str] = &[
    "token",
    "password",
    "secret",
    "credentials",
    "key",
    // `operators = [...]`: a list of named tokens, where a token pasted in
    // place of a table would otherwise be echoed
    "operators",
];

/// A byte order mark, which some editors write at the start of a UTF-8 file.
pub(super) const BOM: char = '\u{feff}';

/// How a masked value is shown.
pub(super) const MASK: &str = "\"****\"";

/// Is any part of this dotted key secret-looking? An operator's `name`
/// (`orchestrator.operators[N].name`) is not: it is recorded in the events
/// of its actions, and a problem with it must show it (masked, the name
/// "a" given twice read "oper****tor n****me \"****\" is given twice").
pub(super) fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    let operator_name = k
        .strip_prefix("orchestrator.operators[")
        .and_then(|rest| rest.split_once("].name"))
        .is_some_and(|(i, after)| after.is_empty() && i.parse::<usize>().is_ok());
    !operator_name && SECRET_WORDS.iter().any(|w| k.contains(w))
}

/// `text` with the value of every `NAME=VALUE` whose name looks secret
/// (see [`is_secret`]) masked: `DB_PASSWORD=s3cret` written in a
/// `pass_env` (which lists names), `--password=s3cret` in a command,
/// `?api_key=s3cret` in a check's URL are shown as `DB_PASSWORD=****`
/// wherever a problem would echo them. The value ends at a quote, a space,
/// `&`, `,`, `;`, or a closing bracket, brace or parenthesis.
pub(super) fn mask_assignments(text: &str) -> String {
    let ends =
        |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '&' | ',' | ';' | ']' | '}' | ')');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let after = &after[1..];
        let name_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        let name = &before[name_start..];
        // (An escaped character, `\"` in a Debug-quoted value, is part of it.)
        let mut value_len = after.len();
        let mut chars = after.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '\\' {
                chars.next();
            } else if ends(c) {
                value_len = i;
                break;
            }
        }
        out.push_str(before);
        out.push('=');
        if !name.is_empty() && is_secret(name) && value_len > 0 {
            out.push_str("****");
            rest = &after[value_len..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The most characters of a value a problem shows.
pub(super) const MAX_SHOWN: usize = 120;

/// A value as a problem shows it: one longer than [`MAX_SHOWN`]
/// characters (a path or a list of 100,000) is cut, saying how long it
/// is, so one line of the output says what is wrong.
pub(super) fn shorten(value: &str) -> String {
    let n = value.chars().count();
    if n <= MAX_SHOWN {
        return value.to_string();
    }
    let head: String = value.chars().take(MAX_SHOWN - 40).collect();
    format!("{head}… ({n} characters)")
}

/// Rounds of "report, remove the bad key, try again" per table.
pub(super) const MAX_ROUNDS: usize = 64;

/// One step of a path into the TOML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// `base` followed by `segs` as a dotted key: `sites.ca` + `checks`,`0`,`url`
/// = `sites.ca.checks[0].url`.
pub(super) fn fmt_path(base: &str, segs: &[Seg]) -> String {
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

/// Split a dotted key made by [`fmt_path`] back into steps: bare keys,
/// `[N]` indexes, and keys it quoted (`addresses."t.x"`, written as Rust
/// writes a string: a quoted key may hold a '.', a '[' or an escape).
pub(super) fn parse_path(key: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut chars = key.chars().peekable();
    let mut name = String::new();
    let mut named = false;
    let end_key = |name: &mut String, named: &mut bool, out: &mut Vec<Seg>| {
        if *named || !name.is_empty() {
            out.push(Seg::Key(std::mem::take(name)));
        }
        *named = false;
    };
    while let Some(c) = chars.next() {
        match c {
            '.' => end_key(&mut name, &mut named, &mut out),
            '[' => {
                end_key(&mut name, &mut named, &mut out);
                let idx: String = chars.by_ref().take_while(|c| *c != ']').collect();
                if let Ok(i) = idx.parse() {
                    out.push(Seg::Index(i));
                }
            }
            '"' if name.is_empty() && !named => {
                named = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some('n') => name.push('\n'),
                            Some('r') => name.push('\r'),
                            Some('t') => name.push('\t'),
                            Some('0') => name.push('\0'),
                            Some('u') => {
                                let hex: String = chars
                                    .by_ref()
                                    .skip_while(|c| *c == '{')
                                    .take_while(|c| *c != '}')
                                    .collect();
                                if let Some(c) =
                                    u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                                {
                                    name.push(c);
                                }
                            }
                            Some(other) => name.push(other),
                            None => {}
                        },
                        other => name.push(other),
                    }
                }
            }
            other => name.push(other),
        }
    }
    end_key(&mut name, &mut named, &mut out);
    out
}

/// The node at `segs` below `v`, if there is one.
pub(super) fn get<'a, 'i>(
    v: &'a Spanned<DeValue<'i>>,
    segs: &[Seg],
) -> Option<&'a Spanned<DeValue<'i>>> {
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
pub(super) fn locate(v: &Spanned<DeValue<'_>>, target: &Range<usize>) -> Vec<Seg> {
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
pub(super) fn remove(v: &mut Spanned<DeValue<'_>>, segs: &[Seg]) -> Option<usize> {
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
pub(super) fn strings<'a>(v: &'a Spanned<DeValue<'_>>, out: &mut Vec<&'a str>) {
    match v.get_ref() {
        DeValue::String(s) => out.push(s),
        DeValue::Table(t) => t.iter().for_each(|(_, x)| strings(x, out)),
        DeValue::Array(a) => a.iter().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// The names between backquotes in a serde message: "one of `a`, `b`" → [a, b].
pub(super) fn quoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Describe serde's "found" part without repeating the value (it is shown
/// separately, and may be a secret).
pub(super) fn describe_found(found: &str) -> String {
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
pub(super) fn describe_expected(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "struct SecretRef" => {
            "a secret reference: { file = \"/etc/warden/NAME\" } or { env = \"VAR\" } (secret values are never written in the file)".into()
        }
        "a duration" => DURATION_HINT.into(),
        "socket address" => "an IP:PORT address such as \"10.0.0.1:7000\"".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        // The range, not just the sign: 5000000000 for a u32 is
        // non-negative, and "expected a non-negative integer" misled.
        "u8" => "an integer from 0 to 255".into(),
        "u16" => "an integer from 0 to 65535".into(),
        "u32" => "an integer from 0 to 4294967295".into(),
        "u64" | "usize" => "an integer from 0 to 18446744073709551615".into(),
        // (A Rust type's name said nothing to an operator: "expected f64".)
        "f64" | "f32" => "a number such as 0.1 (an integer is taken too)".into(),
        "path string" => "a path (a string) such as \"/var/lib/warden\"".into(),
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

pub(super) const DURATION_HINT: &str = "a duration such as \"500ms\", \"3s\" or \"1m 30s\"";

/// Turn a serde/toml message into "what is wrong; what is allowed".
/// `node` is the offending value, if any.
pub(super) fn humanize(msg: &str, node: Option<&Spanned<DeValue<'_>>>) -> String {
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

/// Why an argv (a `command` check, a hook, `fence_command`, a notify or
/// replication command) cannot be run, or `None`: it names no program,
/// names it by a relative path (`./fence.sh`: found or not depending on
/// the directory the process started in; a bare name is looked up in
/// PATH), or holds a NUL character, which no argument of a started program can (the
/// C strings of `execve` end at it) — every run would fail to start, a
/// hook's at the failover that needs it.
pub(super) fn argv_problem(argv: &[String]) -> Option<&'static str> {
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Some("must name a program: [\"/path/to/prog\", \"arg\", ...]");
    }
    if argv[0].contains('/') && !argv[0].starts_with('/') {
        return Some(
            "names its program by a relative path, which is looked up from the directory the \
             service happens to start in (\"/\" under systemd): every run could fail to find it; \
             give its absolute path (or a bare name, looked up in PATH)",
        );
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Some(
            "holds a NUL character (\\u0000), which no program's argument can hold: every run \
             would fail to start; remove it",
        );
    }
    None
}

/// `Some(name)` if the message is serde's "missing field `name`".
pub(super) fn missing_field(msg: &str) -> Option<String> {
    let rest = msg.trim().strip_prefix("missing field `")?;
    Some(rest.trim_end_matches('`').to_string())
}

/// Is `s` a plausible `host:port`?
/// Why `s` is not an `http://` or `https://` URL the services can use
/// (parsed by the `url` crate, as reqwest parses it when the service
/// starts), or `None`. The flag says whether the value may be echoed: not
/// when it holds credentials.
pub(super) fn http_url_problem(s: &str) -> Option<(String, bool)> {
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Some(("must be an http:// or https:// URL".into(), true));
    }
    match url::Url::parse(s) {
        Err(e) => Some((format!("is not a URL: {e}"), true)),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => Some((
            "holds credentials (user:password@): they are never written in a URL; \
             give them as a secret reference"
                .into(),
            false,
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some(("names no host".into(), true)),
        // The URL crate takes port 0, and every request to it fails.
        Ok(u) if u.port() == Some(0) => Some((
            "has port 0, where nothing can be reached: give the port the service listens on \
             (or none for the scheme's own, 80 or 443)"
                .into(),
            true,
        )),
        Ok(_) => None,
    }
}

/// A DNS name as the DNS code takes it: ASCII letters, digits, `-` and
/// `_`, labels of 1 to 63 characters, 253 in all (a trailing dot allowed).
pub(super) fn dns_name_problem(s: &str) -> Option<String> {
    let n = s.strip_suffix('.').unwrap_or(s);
    if n.is_empty() {
        return Some("is empty".into());
    }
    if n.len() > 253 {
        return Some(format!(
            "is {} characters long; a DNS name has at most 253",
            n.len()
        ));
    }
    for label in n.split('.') {
        if label.is_empty() {
            return Some("has an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Some(format!(
                "has a label of {} characters; at most 63",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Some(format!(
                "holds {c:?}: a DNS name has ASCII letters, digits, '-' and '_' \
                 (an internationalised name in its xn-- form)"
            ));
        }
    }
    None
}

/// Whether DNS name `name` is `zone` or inside it (case and a trailing dot ignored).
pub(super) fn in_zone(name: &str, zone: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let z = zone.trim_end_matches('.').to_ascii_lowercase();
    n == z || n.ends_with(&format!(".{z}"))
}

/// `host:port` with a port of 1-65535 and a host that is an IPv4 address, a
/// bracketed IPv6 address or a DNS name (no scheme, path or spaces).
pub(super) fn host_port(s: &str) -> bool {
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return a.port() > 0;
    }
    s.rsplit_once(':').is_some_and(|(h, p)| {
        p.parse::<u16>().is_ok_and(|p| p > 0) && !h.contains(':') && dns_name_problem(h).is_none()
    })
}

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

    pub(super) fn parse_all(&mut self) -> Option<Config> {
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
        if let Some(o) = &orchestrator {
            if o.tls.as_ref().is_some_and(|t| t.client_ca.is_some()) {
                self.check_site_cert_names(sections.get("sites").copied(), &sites);
            }
        }
        for (name, site) in &sites {
            self.check_site(name, site);
            if let Some(d) = &detection {
                self.check_report_interval(name, site, d);
            }
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
            self.check_identities(name, g, &sites);
            self.check_hook_times(name, g, &sites);
            if let Some(f) = g.frontend_scheme() {
                self.check_shared_site_backends(name, f);
            }
        }
        if let Some(o) = &orchestrator {
            self.check_frontend_client_certs(o, &frontends);
        }
        self.check_frontend_binds(&frontends, &groups);
        self.check_shared_records(&groups);
        self.check_shared_backends(&groups, &haproxy_frontends);
        self.check_shared_data(&groups);
        self.check_looping_backends(&groups, &frontends);
        if let Some(o) = &orchestrator {
            self.check_zone_ids(o, &frontends, &groups);
            self.check_report_sizes(o, &sites, &groups);
        }
        if let (true, Some(o)) = (self.deployment, &orchestrator) {
            self.check_token_refs(o, &sites, &frontends);
            self.check_dial_addrs(o, &frontends, &haproxy_frontends, &groups);
            self.check_shared_hosts(&o.data_dir, &frontends, &groups);
            self.check_probed_addrs(&sites, &groups);
        }

        Some(Config {
            path: self.path.clone(),
            orchestrator: orchestrator?,
            detection: detection?,
            sites,
            frontends,
            haproxy_frontends,
            groups,
            secret_vars: std::mem::take(&mut self.secret_vars),
        })
    }
}
