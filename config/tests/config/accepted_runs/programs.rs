//! A program or a file named by a relative path is refused.

use crate::{find, ok, problems, show, BASE};

/// A command whose program is a relative path (`./promote.sh`,
/// `bin/fence`) is looked up from the directory the service starts in:
/// it ran from an operator's shell in /etc/warden, and under systemd
/// (which starts services in "/") a check, a promote hook at the
/// failover, a fence command, a notify command or a replication command
/// could not be found at every run. Refused at its key; an absolute path
/// or a bare name (looked up in PATH) is fine.
#[test]
fn a_program_named_by_a_relative_path_is_refused() {
    let text = (BASE.replace(
        "kind = \"http\"\nurl = \"http://127.0.0.1:8080/healthz\"",
        "kind = \"command\"\ncommand = [\"./check-app\"]",
    ) + "\n[[sites.tx.promote]]\nname = \"p\"\ncommand = [\"bin/promote\", \"now\"]\n\
         [[orchestrator.notify]]\nname = \"n\"\ncommand = [\"../page\"]\n\
         [groups.web.replication]\nplan = \"command\"\nstart = [\"scripts/repl\", \"start\"]\n\
         resync = [\"/usr/local/bin/repl\", \"resync\"]\n")
        .replace(
            "scheme = \"frontend\"\n",
            "scheme = \"frontend\"\nfence_command = [\"./fence.sh\"]\n",
        );
    let p = problems(&text);
    for key in [
        "sites.ca.checks[0].command",
        "sites.tx.promote[0].command",
        "orchestrator.notify[0].command",
        "groups.web.replication.start",
        "groups.web.fence_command",
    ] {
        assert!(
            find(&p, key).message.contains("relative path"),
            "{}",
            show(&p)
        );
    }
    assert_eq!(p.len(), 5, "{}", show(&p));
    for program in ["/usr/local/bin/check-app", "check-app"] {
        ok(&BASE.replace(
            "kind = \"http\"\nurl = \"http://127.0.0.1:8080/healthz\"",
            &format!("kind = \"command\"\ncommand = [\"{program}\", \"./arg\"]"),
        ));
    }
}

/// A replication site's `manifest` (what was last confirmed in sync) and
/// `quarantine` (what a failback moved aside), and a client certificate's
/// `cert` and `key` (a site's, the orchestrator's) were taken as relative
/// paths, where every other file must be absolute: the manifest followed
/// the directory the agent started in, and one started elsewhere (a
/// restart under systemd, from "/") lost it. Refused at their keys.
#[test]
fn files_named_by_a_relative_path_are_refused() {
    let text = BASE
        .replace(
            "agent_token = { env = \"WARDEN_TX_TOKEN\" }",
            "agent_token = { env = \"WARDEN_TX_TOKEN\" }\n\
             client_tls = { cert = \"tls/tx.pem\", key = \"tls/tx.key\" }",
        )
        .replace(
            "data_dir = \"/var/lib/warden\"",
            "data_dir = \"/var/lib/warden\"\nclient_tls = { cert = \"o.pem\", key = \"/etc/warden/o.key\" }",
        )
        + "\n[groups.web.replication]\nplan = \"rsync\"\n\
           [groups.web.replication.sites.ca]\npath = \"/srv/data\"\nmodule = \"10.1.0.10/data\"\n\
           user = \"warden\"\npassword = { file = \"/etc/warden/rsync.pw\" }\n\
           manifest = \"web.manifest.json\"\nquarantine = \"quarantine/web\"\n\
           [groups.web.replication.sites.tx]\npath = \"/srv/data\"\nmodule = \"10.2.0.10/data\"\n\
           user = \"warden\"\npassword = { file = \"/etc/warden/rsync.pw\" }\n";
    let p = problems(&text);
    for key in [
        "sites.tx.client_tls.cert",
        "sites.tx.client_tls.key",
        "orchestrator.client_tls.cert",
        "groups.web.replication.sites.ca.manifest",
        "groups.web.replication.sites.ca.quarantine",
    ] {
        assert!(
            find(&p, key).message.contains("absolute path"),
            "{}",
            show(&p)
        );
    }
    assert_eq!(p.len(), 5, "{}", show(&p));
}
