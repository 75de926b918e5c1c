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
