//! Failures: one line on stderr and the documented exit code.

mod common;

use common::{unique, Env};

#[test]
fn an_unknown_name_is_not_found() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("nobody");
    let out = env.run(&["connect", &name, "--server-key", &public], b"hi\n");
    assert_eq!(out.code(), 3);
    let line = out.assert_one_error_line();
    assert!(line.contains(&format!("shmsock listen {name}")), "{line}");
}

#[test]
fn a_wrong_server_key_is_a_key_mismatch() {
    let env = Env::new();
    env.keygen("server.key");
    let other = env.keygen("other.key");
    let name = unique("mismatch");
    let mut listen = env.spawn(&["listen", &name, "-i", "server.key", "-d"]);
    listen.wait_stderr("listening on");
    let out = env.run(&["connect", &name, "--server-key", &other, "-q"], b"secret\n");
    assert_eq!(out.code(), 4);
    let line = out.assert_one_error_line();
    assert!(line.starts_with(&format!("shmsock: connecting to '{name}': ")), "{line}");
    assert!(line.contains("--server-key"), "{line}");
    // The server refused it, stays up, and received nothing.
    listen.wait_stderr("refused a client");
}

#[test]
fn a_client_not_on_the_allow_list_is_rejected() {
    let env = Env::new();
    let server = env.keygen("server.key");
    env.keygen("alice.key");
    env.keygen("mallory.key");
    let name = unique("allow");
    let listen = env.spawn(&["listen", &name, "-i", "server.key", "-d", "--allow", "alice.key.pub"]);
    let mallory = env.run(&["connect", &name, "-s", &server, "-i", "mallory.key", "-q", "--wait", "30"], b"x\n");
    assert_eq!(mallory.code(), 5);
    mallory.assert_one_error_line();
    let alice = env.run(&["connect", &name, "-s", &server, "-i", "alice.key", "-q"], b"from alice\n");
    assert_eq!(alice.code(), 0, "{}", alice.stderr);
    let listen = listen.finish();
    assert_eq!(listen.code(), 0);
    assert_eq!(listen.stdout_text(), "from alice\n");
}

#[test]
fn a_name_in_use_is_refused() {
    let env = Env::new();
    env.keygen("server.key");
    let name = unique("inuse");
    let mut first = env.spawn(&["listen", &name, "-i", "server.key", "-d"]);
    first.wait_stderr("listening on");
    let second = env.run(&["listen", &name, "-i", "server.key", "-d"], b"");
    assert_eq!(second.code(), 8);
    let line = second.assert_one_error_line();
    assert!(line.contains(&format!("pid {}", first.id())), "{line}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let env = Env::new();
    let public = env.keygen("server.key");
    for args in [
        vec!["no-such-command"],
        vec!["connect", "x"],
        vec!["connect", "bad name", "-s", &public],
        vec!["connect", "x", "-s", &public, "--wait", "soon"],
        vec!["listen"],
        vec!["listen", "x", "--bogus"],
        vec!["keygen", "-y", "--force"],
        vec!["bench", "--quick", "--smoke"],
        vec!["list", "extra"],
    ] {
        let out = env.run(&args, b"");
        assert_eq!(out.code(), 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("error:"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn bad_key_arguments_are_key_errors() {
    let env = Env::new();
    for key in ["shmsock-pk:AAAA", "shmsock-sk:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "no-such-file.pub"] {
        let out = env.run(&["connect", "x", "--server-key", key], b"");
        assert_eq!(out.code(), 9, "{key}: {}", out.stderr);
        out.assert_one_error_line();
    }
}

#[test]
fn help_and_version_succeed_and_document_exit_codes() {
    let env = Env::new();
    let help = env.run(&["--help"], b"");
    assert_eq!(help.code(), 0);
    let text = help.stdout_text();
    assert!(text.contains("Exit codes") && text.contains("key mismatch"), "{text}");
    for cmd in ["keygen", "listen", "connect", "list", "bench"] {
        let h = env.run(&[cmd, "--help"], b"");
        assert_eq!(h.code(), 0, "{cmd}");
        assert!(h.stdout_text().contains("Examples:"), "{cmd}");
    }
    let version = env.run(&["--version"], b"");
    assert_eq!(version.code(), 0);
    assert!(version.stdout_text().starts_with("shmsock "));
}
