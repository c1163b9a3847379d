//! A program named by a relative path is refused.

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
