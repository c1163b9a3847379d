//! The check of `warden check-config` ([`super::check_deployment`]) that
//! the orchestrator's start would otherwise be the first to make: every
//! token names one role and one holder, so two roles given the same
//! reference (the same `file` or the same `env`) are the same secret. The
//! operator tokens, the read token and every site's agent token are all
//! distinct; a frontend's token differs from all of them (frontends may
//! share one). Tokens are compared by reference only: their values are
//! not read here, and two references to equal values are left to the
//! orchestrator's start, which compares them.

use super::*;

impl<'t, 'r> Cx<'t, 'r> {
    pub(super) fn check_token_refs(
        &mut self,
        o: &OrchestratorConfig,
        sites: &BTreeMap<String, SiteConfig>,
        frontends: &BTreeMap<String, FrontendConfig>,
    ) {
        // (key, reference) of every token that must be its holder's own.
        let mut own: Vec<(String, &SecretRef)> =
            vec![("orchestrator.operator_token".into(), &o.operator_token)];
        for (i, t) in o.operators.iter().enumerate() {
            own.push((format!("orchestrator.operators[{i}].token"), &t.token));
        }
        if let Some(r) = &o.read_token {
            own.push(("orchestrator.read_token".into(), r));
        }
        for (name, s) in sites {
            own.push((format!("sites.{name}.agent_token"), &s.agent_token));
        }
        for (i, (key, r)) in own.iter().enumerate() {
            if let Some((first, _)) = own[..i].iter().find(|(_, e)| same(e, r)) {
                self.shared(key, first, r);
            }
        }
        for (name, fe) in frontends {
            let r = &fe.token;
            let key = format!("frontends.{name}.token");
            if let Some((first, _)) = own.iter().find(|(_, e)| same(e, r)) {
                self.shared(&key, first, r);
            }
        }
    }

    fn shared(&mut self, key: &str, first: &str, r: &SecretRef) {
        let how = match (&r.file, &r.env) {
            (Some(f), _) => format!("file {:?}", f.display().to_string()),
            (None, Some(e)) => format!("env {e:?}"),
            (None, None) => return,
        };
        self.push(
            self.at(key),
            key,
            None,
            format!(
                "the same secret as {first} ({how}): every token names one role and one holder, \
                 and `warden orchestrator` refuses to start with a secret shared between them; \
                 give each its own"
            ),
        );
    }
}

/// Two references to one secret: the same file or the same variable.
fn same(a: &SecretRef, b: &SecretRef) -> bool {
    (a.file.is_some() && a.file == b.file) || (a.env.is_some() && a.env == b.env)
}
