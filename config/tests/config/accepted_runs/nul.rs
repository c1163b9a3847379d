//! A NUL in a command or a path is refused.

use crate::{find, pos_of_nth, problems, show, BASE};

/// A string in TOML may hold a NUL (`"\u0000"`), which no argument of a
/// started program and no file name can: a `command` check with one fails
/// at every round ("cannot start: nul byte found in provided data", the
/// site judged failing), a hook at the failover that runs it, a fence or
/// notify command each time; a data_dir or a state_dir with one stops the
/// process at start, a secret file can never be read. Each is refused at
/// its key and line:col.
#[test]
fn a_nul_character_in_a_command_or_a_path_is_refused() {
    let nul = "\\u0000";
    // A command check, a promote hook, a fence command, a notify command.
    let text = (BASE.replace(
        "kind = \"http\"\nurl = \"http://127.0.0.1:8080/healthz\"",
        &format!("kind = \"command\"\ncommand = [\"/bin/true{nul}\"]"),
    ) + &format!(
        "\n[[sites.tx.promote]]\nname = \"p\"\ncommand = [\"/usr/local/bin/promote\", \"a{nul}b\"]\n\
         [[orchestrator.notify]]\nname = \"n\"\ncommand = [\"/usr/local/bin/page\", \"{nul}\"]\n"
    ))
    .replace(
        "scheme = \"frontend\"\n",
        &format!("scheme = \"frontend\"\nfence_command = [\"/usr/local/bin/fence{nul}\"]\n"),
    );
    let p = problems(&text);
    for (key, value) in [
        (
            "sites.ca.checks[0].command",
            format!("[\"/bin/true{nul}\"]"),
        ),
        (
            "sites.tx.promote[0].command",
            format!("[\"/usr/local/bin/promote\", \"a{nul}b\"]"),
        ),
        (
            "groups.web.fence_command",
            format!("[\"/usr/local/bin/fence{nul}\"]"),
        ),
        (
            "orchestrator.notify[0].command",
            format!("[\"/usr/local/bin/page\", \"{nul}\"]"),
        ),
    ] {
        let found = find(&p, key);
        assert!(found.message.contains("NUL"), "{found}");
        assert_eq!(
            (found.line, found.col),
            pos_of_nth(&text, &value, 0),
            "{found}"
        );
    }
    assert_eq!(p.len(), 4, "{}", show(&p));
    // A data_dir, a state_dir, a secret file.
    let text = BASE
        .replace(
            "data_dir = \"/var/lib/warden\"",
            &format!("data_dir = \"/var/lib/war{nul}den\""),
        )
        .replace(
            "token = { file = \"/etc/warden/fe1.token\" }",
            &format!(
                "token = {{ file = \"/etc/warden/fe1{nul}\" }}\nstate_dir = \"/var/lib/fe{nul}\""
            ),
        );
    let p = problems(&text);
    for key in [
        "orchestrator.data_dir",
        "frontends.fe1.token.file",
        "frontends.fe1.state_dir",
    ] {
        assert!(find(&p, key).message.contains("NUL"), "{}", show(&p));
    }
    assert_eq!(p.len(), 3, "{}", show(&p));
}
