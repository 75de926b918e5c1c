//! Attacks on the command from issue 17: symbolic links planted where `keygen`
//! writes, a REJECT's error line (its prefix once, not twice), and peers in
//! another pid namespace (`unshare`).

mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{public_key_line, unique, Env, BIN, LIMIT};
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

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `shmsock args...` in a new pid namespace, in `env`, with piped stdio.
fn spawn_in_new_pid_namespace(env: &Env, args: &[&str]) -> std::process::Child {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", BIN])
        .args(args)
        .current_dir(env.path(""))
        .env("SHMSOCK_RUNTIME_DIR", env.runtime())
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning unshare")
}

/// Waits (bounded) for `child` and returns its exit code, stdout and stderr.
fn finish(mut child: std::process::Child) -> (i32, String, String) {
    drop(child.stdin.take());
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command in a new pid namespace did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (mut out, mut err) = (String::new(), String::new());
    let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
    (status.code().unwrap_or(-1), out, err)
}

/// The reproduction: `listen` and `connect` across a pid namespace
/// boundary, both ways (a client in a container, a server in one). Before the
/// fix the side that cannot see its peer's pid failed with "reading peer
/// credentials: Success (os error 0)".
#[test]
fn listen_and_connect_across_pid_namespaces() {
    if !unshare_works() {
        eprintln!("SKIPPED: `unshare --pid --fork --mount-proc` is not available here (needs root or user namespaces)");
        return;
    }
    let env = Env::new();
    let key = env.keygen("server.key");

    // Client in a new namespace.
    let name = unique("pidns-client");
    let mut listen = env.spawn(&["listen", &name, "-i", "server.key", "-d"]);
    listen.wait_stderr("listening on");
    let mut client = spawn_in_new_pid_namespace(&env, &["connect", &name, "-s", &key, "-q"]);
    client.stdin.as_mut().unwrap().write_all(b"from a container\n").unwrap();
    let (code, _, err) = finish(client);
    assert_eq!(code, 0, "{err}");
    let listen = listen.finish();
    assert_eq!(listen.code(), 0, "{}", listen.stderr);
    assert_eq!(listen.stdout_text(), "from a container\n");

    // Server in a new namespace.
    let name = unique("pidns-server");
    let server = spawn_in_new_pid_namespace(&env, &["listen", &name, "-i", "server.key", "-d", "-q"]);
    let out = env.run(&["connect", &name, "-s", &key, "-q", "--wait", "30"], b"into a container\n");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let (code, stdout, err) = finish(server);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout, "into a container\n");
}
