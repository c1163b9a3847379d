//! One token reference is never shared between roles (check-config).

use super::deployment_problems;
use crate::{ok, BASE};

/// `check_deployment` (what `warden check-config` runs) refuses two roles
/// given one token reference, as the orchestrator's start would: operator
/// tokens, the read token and agent tokens are each their own; a
/// frontend's differs from them all, while frontends may share one. A
/// plain `parse` (what an agent or a frontend loads) leaves it alone.
#[test]
fn a_token_reference_shared_between_roles_is_refused_by_check_config() {
    let check = deployment_problems;
    assert_eq!(check(BASE), vec![], "the base config");
    // The read token and a named operator's share a variable; site tx's
    // agent token is the operator token's file; a second frontend shares
    // fe1's file (allowed).
    let text = BASE
        .replace(
            "operator_token = { file = \"/etc/warden/operator.token\" }",
            "operator_token = { file = \"/etc/warden/operator.token\" }\n\
             read_token = { env = \"WARDEN_SHARED\" }\n\
             operators = [{ name = \"alice\", token = { env = \"WARDEN_SHARED\" } }]",
        )
        .replace(
            "agent_token = { env = \"WARDEN_TX_TOKEN\" }",
            "agent_token = { file = \"/etc/warden/operator.token\" }",
        )
        + "\n[frontends.fe2]\ncontrol = \"10.0.0.6:7100\"\ntoken = { file = \"/etc/warden/fe1.token\" }\n";
    ok(&text);
    let ps = check(&text);
    let said: Vec<(String, String)> = ps
        .iter()
        .map(|p| (p.key.clone(), p.message.clone()))
        .collect();
    assert_eq!(ps.len(), 2, "{said:?}");
    assert_eq!(ps[0].key, "orchestrator.read_token");
    assert!(
        ps[0]
            .message
            .contains("the same secret as orchestrator.operators[0].token (env \"WARDEN_SHARED\")"),
        "{said:?}"
    );
    assert_eq!(ps[1].key, "sites.tx.agent_token");
    assert!(
        ps[1]
            .message
            .contains("the same secret as orchestrator.operator_token"),
        "{said:?}"
    );
}
