//! Attacks on the command from issue 17: symbolic links planted where `keygen`
//! writes, and a REJECT's error line (its prefix once, not twice).

mod common;

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use common::{public_key_line, unique, Env, LIMIT};
use shmsock::control::{self, Record};
use shmsock::handshake::RejectReason;

/// `keygen` in a shared directory (mode 1777) where another user planted
/// symbolic links: the `.pub` link is replaced, not followed; a link at the key
/// path is refused (and with --force removed, never followed).
#[test]
fn keygen_never_writes_through_planted_symlinks() {
    let env = Env::new();
    std::fs::set_permissions(env.path(""), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = env.path("victim");
    std::fs::write(&victim, "precious\n").unwrap();

    std::os::unix::fs::symlink(&victim, env.path("id.key.pub")).unwrap();
    let out = env.run(&["keygen", "-f", "id.key"], b"");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "keygen wrote through id.key.pub");
    let public = std::fs::symlink_metadata(env.path("id.key.pub")).unwrap();
    assert!(public.file_type().is_file());
    assert_eq!(std::fs::read_to_string(env.path("id.key.pub")).unwrap().trim(), public_key_line(&out.stdout_text()));

    std::os::unix::fs::symlink(&victim, env.path("other.key")).unwrap();
    let refused = env.run(&["keygen", "-f", "other.key"], b"");
    assert_eq!(refused.code(), 1);
    assert!(refused.assert_one_error_line().contains("already exists"));
    let forced = env.run(&["keygen", "-f", "other.key", "--force"], b"");
    assert_eq!(forced.code(), 0, "{}", forced.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "keygen --force wrote through the link");
    assert!(std::fs::symlink_metadata(env.path("other.key")).unwrap().file_type().is_file());
}

/// A server that answers every HELLO with a REJECT of `reason`.
fn rejecting_server(env: &Env, name: &str, reason: RejectReason) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(env.runtime().join(format!("{name}.sock"))).unwrap();
    std::thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut fds = Vec::new();
        let record = control::receive(socket.as_fd(), &mut fds, Some(Instant::now() + LIMIT)).unwrap();
        assert!(matches!(record, Record::Hello(_)));
        control::send(socket.as_fd(), &control::encode_reject(reason, "go away"), &[]).unwrap();
    })
}

/// Each REJECT reason without a message of the command's own prints the
/// "connecting to 'ep'" prefix once (it was printed twice).
#[test]
fn a_reject_prints_its_prefix_once() {
    let env = Env::new();
    let key = env.keygen("server.key");
    for reason in [
        RejectReason::NoCommonVersion,
        RejectReason::NoCommonCipher,
        RejectReason::Malformed,
        RejectReason::ServerError,
    ] {
        let name = unique("rejects");
        let server = rejecting_server(&env, &name, reason);
        let out = env.run(&["connect", &name, "--server-key", &key, "-q"], b"");
        server.join().unwrap();
        assert_ne!(out.code(), 0);
        let line = out.assert_one_error_line();
        let prefix = format!("connecting to '{name}'");
        assert_eq!(line.matches(&prefix).count(), 1, "{reason:?}: {line}");
        assert!(line.starts_with(&format!("shmsock: {prefix}: ")) && line.contains("go away"), "{reason:?}: {line}");
    }
}
