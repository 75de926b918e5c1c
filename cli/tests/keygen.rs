//! `shmsock keygen`: mode 0600, no silent overwrite, -y and -l.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{public_key_line, Env};

#[test]
fn keygen_writes_a_private_key_file_and_prints_the_public_key() {
    let env = Env::new();
    let out = env.run(&["keygen", "-f", "id.key"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let text = out.stdout_text();
    let public = public_key_line(&text);
    assert!(public.starts_with("shmsock-pk:"), "{public}");
    let fingerprint = text.lines().find_map(|l| l.strip_prefix("fingerprint: ")).expect("fingerprint line");
    assert_eq!(fingerprint.len(), 19, "{fingerprint}");

    let mode = std::fs::metadata(env.path("id.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pub_text = std::fs::read_to_string(env.path("id.key.pub")).unwrap();
    assert_eq!(pub_text.trim(), public);

    // -y prints the public key of the key file; -l the fingerprint of any KEY.
    let y = env.run(&["keygen", "-y", "-f", "id.key"], b"");
    assert_eq!(y.code(), 0, "{}", y.stderr);
    assert_eq!(y.stdout_text(), format!("{public}\n"));
    let l = env.run(&["keygen", "-l", "-f", "id.key.pub"], b"");
    assert_eq!(l.code(), 0, "{}", l.stderr);
    assert_eq!(l.stdout_text(), format!("{fingerprint} {public}\n"));
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let env = Env::new();
    let first = public_key_line(&env.run(&["keygen", "-f", "id.key"], b"").stdout_text());
    let again = env.run(&["keygen", "-f", "id.key"], b"");
    assert_eq!(again.code(), 1);
    let line = again.assert_one_error_line();
    assert!(line.contains("already exists") && line.contains("--force"), "{line}");
    // The key is untouched.
    let y = env.run(&["keygen", "-y", "-f", "id.key"], b"");
    assert_eq!(y.stdout_text().trim(), first);

    let forced = env.run(&["keygen", "-f", "id.key", "--force"], b"");
    assert_eq!(forced.code(), 0, "{}", forced.stderr);
    let second = public_key_line(&forced.stdout_text());
    assert_ne!(first, second);
    let y = env.run(&["keygen", "-y", "-f", "id.key"], b"");
    assert_eq!(y.stdout_text().trim(), second);
}

#[test]
fn keygen_uses_shmsock_key_by_default() {
    let env = Env::new();
    let out = env.run(&["keygen"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(env.path("shmsock.key").is_file());
    assert!(env.path("shmsock.key.pub").is_file());
    let y = env.run(&["keygen", "-y"], b"");
    assert_eq!(y.stdout_text().trim(), public_key_line(&out.stdout_text()));
}

#[test]
fn unusable_key_files_exit_with_the_key_code() {
    let env = Env::new();
    let missing = env.run(&["keygen", "-y", "-f", "nope.key"], b"");
    assert_eq!(missing.code(), 9);
    assert!(missing.assert_one_error_line().contains("shmsock keygen -f nope.key"));

    env.keygen("open.key");
    std::fs::set_permissions(env.path("open.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = env.run(&["keygen", "-y", "-f", "open.key"], b"");
    assert_eq!(open.code(), 9);
    assert!(open.assert_one_error_line().contains("chmod 600"));

    std::fs::write(env.path("junk.key"), "hello\n").unwrap();
    std::fs::set_permissions(env.path("junk.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let junk = env.run(&["keygen", "-y", "-f", "junk.key"], b"");
    assert_eq!(junk.code(), 9);
    junk.assert_one_error_line();
}

#[test]
fn keygen_quiet_prints_nothing_but_writes_the_key() {
    let env = Env::new();
    let out = env.run(&["keygen", "-q", "-f", "q.key"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout_text());
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert!(env.path("q.key").is_file() && env.path("q.key.pub").is_file());
    // Errors are still reported.
    let again = env.run(&["keygen", "-q", "-f", "q.key"], b"");
    assert_eq!(again.code(), 1);
    again.assert_one_error_line();
    // -q with -y or --json makes no sense: a usage error.
    assert_eq!(env.run(&["keygen", "-q", "-y", "-f", "q.key"], b"").code(), 2);
    assert_eq!(env.run(&["keygen", "-q", "--json", "-f", "r.key"], b"").code(), 2);
}

#[test]
fn keygen_json_is_one_object_with_stable_fields() {
    let env = Env::new();
    let out = env.run(&["keygen", "--json", "-f", "j.key"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let text = out.stdout_text();
    assert_eq!(text.lines().count(), 1, "{text}");
    let made: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let public = made["public_key"].as_str().expect("public_key");
    assert!(public.starts_with("shmsock-pk:"), "{made}");
    assert_eq!(made["file"], "j.key");
    assert_eq!(made["public_file"], "j.key.pub");
    assert_eq!(std::fs::read_to_string(env.path("j.key.pub")).unwrap().trim(), public);

    // -y and -l: the same key and fingerprint, no file fields.
    for flag in ["-y", "-l"] {
        let out = env.run(&["keygen", flag, "--json", "-f", "j.key"], b"");
        assert_eq!(out.code(), 0, "{}", out.stderr);
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(shown["public_key"], made["public_key"], "{flag}");
        assert_eq!(shown["fingerprint"], made["fingerprint"], "{flag}");
        assert!(shown.get("file").is_none(), "{flag}: {shown}");
    }
}
