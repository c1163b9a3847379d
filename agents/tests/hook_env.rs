//! Hooks run with a clean environment and their output is scrubbed
//! (issue 14): a hook that prints its whole environment shows none of the
//! agent's secrets — neither a secret's variable nor its value — and a hook
//! that prints a secret it could read anyway (a world-readable copy, an
//! operator's mistake) has it masked in the outcome that goes into events.
//! Real hook processes (`sh`, `env`), through the agent's hook runner.

use warden_agents::hooks::{run_hooks, HookContext};
use warden_agents::wire::CommandKind;
use warden_config::{HookSpec, Secret, SecretRef};

const TOKEN: &str = "agent-token-5f1c9e2a7b";
const PASSWORD: &str = "rsync-password-0d4e8b16";

fn hook(name: &str, script: &str) -> HookSpec {
    toml::from_str(&format!(
        "name = {name:?}\ncommand = [\"sh\", \"-c\", {script:?}]\ntimeout = \"10s\""
    ))
    .unwrap()
}

fn cx() -> HookContext {
    HookContext {
        group: "web".into(),
        epoch: 4,
        site: "a".into(),
        action: CommandKind::Promote,
        state_dir: None,
    }
}

#[tokio::test]
async fn a_hook_sees_no_secret_and_its_output_is_masked() {
    // The agent's token from a variable, an rsync password from a file.
    std::env::set_var("WARDEN_TEST_AGENT_TOKEN", TOKEN);
    std::env::set_var("WARDEN_TEST_HARMLESS", "visible-value");
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("rsync.pw");
    std::fs::write(&pw, PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let token = Secret::load(
        "sites.a.agent_token",
        &SecretRef {
            file: None,
            env: Some("WARDEN_TEST_AGENT_TOKEN".into()),
            others_may_read: false,
        },
    )
    .unwrap();
    let password = Secret::load(
        "replication.password",
        &SecretRef {
            file: Some(pw.clone()),
            env: None,
            others_may_read: false,
        },
    )
    .unwrap();
    // The operator passes one harmless variable and (by mistake) the token's.
    warden_config::child::set_pass_env(&[
        "WARDEN_TEST_HARMLESS".into(),
        "WARDEN_TEST_AGENT_TOKEN".into(),
    ]);

    // 1. Prints its environment, then fails so the output reaches the outcome.
    let out = run_hooks("web:4:promote", &[hook("dump-env", "env; exit 3")], &cx()).await;
    assert!(!out.ok);
    assert!(out.detail.contains("WARDEN_GROUP=web"), "{}", out.detail);
    assert!(out.detail.contains("PATH="), "{}", out.detail);
    assert!(
        out.detail.contains("WARDEN_TEST_HARMLESS=visible-value"),
        "a pass_env variable reaches the hook: {}",
        out.detail
    );
    assert!(
        !out.detail.contains("WARDEN_TEST_AGENT_TOKEN"),
        "the token's variable must not reach a hook: {}",
        out.detail
    );
    assert!(!out.detail.contains(token.expose()), "{}", out.detail);

    // 2. Prints the secrets it can read: masked in what warden reports.
    let script = format!(
        "echo \"token: $WARDEN_TEST_AGENT_TOKEN.\"; echo \"password: $(cat {})\"; exit 1",
        pw.display()
    );
    let out = run_hooks("web:4:promote", &[hook("leak", &script)], &cx()).await;
    assert!(!out.ok);
    assert!(!out.detail.contains(password.expose()), "{}", out.detail);
    assert!(out.detail.contains("password: ****"), "{}", out.detail);
    assert!(
        out.detail.contains("token: ."),
        "the variable is not even set: {}",
        out.detail
    );

    // 3. A secret cut by the output tail (2 KiB) is masked too.
    let script = format!(
        "printf '%s' '{}'; head -c 2040 /dev/zero | tr '\\0' x; exit 1",
        password.expose()
    );
    let out = run_hooks("web:4:promote", &[hook("cut", &script)], &cx()).await;
    let tail = out.detail.split("; output: ").nth(1).unwrap_or_default();
    assert!(tail.starts_with("****x"), "{tail:.40}");
    assert!(
        !out.detail.contains(&password.expose()[15..]),
        "{}",
        out.detail
    );

    // 4. A secret written in two pieces to stdout, with a line to stderr
    // between them (a program that buffers stdout and writes stderr at
    // once): masked whole, neither piece shown. Before, the two streams
    // went into one tail as they came and the pieces passed unmasked
    // ("token=<first half>progress\n<second half>").
    let (head, rest) = password.expose().split_at(10);
    let script = format!(
        "printf 'token=%s' '{head}'; sleep 0.3; echo progress >&2; sleep 0.3; \
         printf '%s\\n' '{rest}'; exit 1"
    );
    let out = run_hooks("web:4:promote", &[hook("split", &script)], &cx()).await;
    assert!(!out.ok);
    assert!(out.detail.contains("progress"), "{}", out.detail);
    assert!(
        !out.detail.contains(head) && !out.detail.contains(rest),
        "{}",
        out.detail
    );
    assert!(out.detail.contains("token=****"), "{}", out.detail);
}
