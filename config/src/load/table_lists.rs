//! A table written as a list of tables: `[[orchestrator]]`,
//! `[[sites.tx]]`, `[[groups.web.frontend]]` where `[...]` was meant.
//! serde builds a struct from an array too, taking its elements as the
//! fields in order, so such a file was refused with nonsense: "orchestrator[0]:
//! expected an IP:PORT address, found a table", "wanted exactly 1 element,
//! more than 1 element", or every key of `[[sites.tx]]` reported as an
//! unknown key of a secret reference. A `[[KEY]]` header at a key that is
//! not a list of tables is reported as such at the header, and the list is
//! not read further.

use super::*;

/// The keys that are lists of tables (`[[KEY]]`), `*` any name.
const LISTS: [&str; 7] = [
    "orchestrator.operators",
    "orchestrator.nodes",
    "orchestrator.notify",
    "sites.*.checks",
    "sites.*.endpoints",
    "sites.*.promote",
    "sites.*.demote",
];

fn is_list(key: &str) -> bool {
    LISTS.iter().any(|pattern| {
        let (p, k): (Vec<&str>, Vec<&str>) =
            (pattern.split('.').collect(), key.split('.').collect());
        p.len() == k.len() && p.iter().zip(&k).all(|(p, k)| *p == "*" || p == k)
    })
}

impl<'t, 'r> Cx<'t, 'r> {
    /// Report every list of tables made by `[[...]]` headers in `v` (the
    /// value of `base`) at a key that is no such list, and take it out of
    /// `v`. False when `v` itself is one (nothing of it can be read).
    pub(super) fn refuse_table_lists(&mut self, base: &str, v: &mut Spanned<DeValue<'_>>) -> bool {
        let mut found: Vec<(Vec<Seg>, Range<usize>)> = Vec::new();
        self.find_table_lists(base, v, &mut Vec::new(), &mut found);
        for (segs, span) in found.iter().rev() {
            let key = fmt_path(base, segs);
            self.push_de(
                span.clone(),
                &key,
                None,
                format!(
                    "[[{key}]] starts a list of tables, and {key} is not one (only a site's \
                     checks, endpoints, promote and demote, and the orchestrator's operators, \
                     nodes and notify are); for one table write [{key}]"
                ),
            );
            if segs.is_empty() {
                return false;
            }
            remove(v, segs);
        }
        true
    }

    fn find_table_lists(
        &self,
        base: &str,
        v: &Spanned<DeValue<'_>>,
        path: &mut Vec<Seg>,
        found: &mut Vec<(Vec<Seg>, Range<usize>)>,
    ) {
        match v.get_ref() {
            DeValue::Array(a) => {
                // `[[KEY]]` headers: an array of tables whose text starts
                // with `[[` (an inline `[[]]` or `[["a"]]` holds arrays).
                let header = !a.is_empty()
                    && a.iter().all(|i| matches!(i.get_ref(), DeValue::Table(_)))
                    && self.text.get(v.span()).is_some_and(|s| s.starts_with("[["));
                if header && !is_list(&fmt_path(base, path)) {
                    found.push((path.clone(), v.span()));
                    return;
                }
                for (i, item) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    self.find_table_lists(base, item, path, found);
                    path.pop();
                }
            }
            DeValue::Table(t) => {
                for (k, item) in t.iter() {
                    path.push(Seg::Key(k.get_ref().to_string()));
                    self.find_table_lists(base, item, path, found);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}
