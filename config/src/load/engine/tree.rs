//! Paths into the parsed TOML tree: a dotted key and its steps ([`Seg`]),
//! finding the node a serde error's span points at, removing a bad key
//! from a copy of a table.

use super::*;

/// One step of a path into the TOML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::load) enum Seg {
    Key(String),
    Index(usize),
}

/// `base` followed by `segs` as a dotted key: `sites.ca` + `checks`,`0`,`url`
/// = `sites.ca.checks[0].url`.
pub(in crate::load) fn fmt_path(base: &str, segs: &[Seg]) -> String {
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
pub(in crate::load) fn parse_path(key: &str) -> Vec<Seg> {
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
pub(in crate::load) fn get<'a, 'i>(
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
pub(in crate::load) fn locate(v: &Spanned<DeValue<'_>>, target: &Range<usize>) -> Vec<Seg> {
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
pub(in crate::load) fn remove(v: &mut Spanned<DeValue<'_>>, segs: &[Seg]) -> Option<usize> {
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
pub(in crate::load) fn strings<'a>(v: &'a Spanned<DeValue<'_>>, out: &mut Vec<&'a str>) {
    match v.get_ref() {
        DeValue::String(s) => out.push(s),
        DeValue::Table(t) => t.iter().for_each(|(_, x)| strings(x, out)),
        DeValue::Array(a) => a.iter().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key `fmt_path` quoted (it holds a '.', a '[', a quote or a control
    /// character) is one step again: `at` found no such path and placed the
    /// problem at the enclosing table.
    #[test]
    fn a_quoted_key_is_one_step() {
        for name in ["t.x", "a[0]", "q\"uote", "tab\there", "é.\u{1}", ""] {
            let segs = vec![
                Seg::Key("groups".into()),
                Seg::Index(2),
                Seg::Key(name.into()),
                Seg::Key("x".into()),
            ];
            let key = fmt_path("", &segs);
            assert_eq!(parse_path(&key), segs, "{key}");
        }
    }
}
