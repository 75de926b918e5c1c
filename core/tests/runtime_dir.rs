//! The runtime directory lookup (PROTOCOL.md section 9): which variables, an
//! empty one counting as unset, and a directory that is not private refused by
//! servers and clients alike.
//!
//! One test in its own binary: it changes the environment, which no other
//! thread of this process reads meanwhile.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use shmsock::platform::{current_uid, runtime_dir};
use shmsock::{endpoint, ErrorKind};

fn set(name: &str, value: &Path) {
    std::env::set_var(name, value);
}

#[test]
fn the_runtime_directory_lookup() {
    let scratch = tempfile::tempdir().unwrap();
    let uid = current_uid();

    // An empty SHMSOCK_RUNTIME_DIR is unset: XDG_RUNTIME_DIR/shmsock, created 0700.
    set("SHMSOCK_RUNTIME_DIR", Path::new(""));
    set("XDG_RUNTIME_DIR", &scratch.path().join("xdg"));
    let dir = runtime_dir().unwrap();
    assert_eq!(dir, scratch.path().join("xdg/shmsock"));
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);

    // An empty XDG_RUNTIME_DIR is unset too: $TMPDIR/shmsock-<uid>.
    set("XDG_RUNTIME_DIR", Path::new(""));
    set("TMPDIR", scratch.path());
    assert_eq!(runtime_dir().unwrap(), scratch.path().join(format!("shmsock-{uid}")));

    // And an empty TMPDIR: /tmp/shmsock-<uid>, never a relative path.
    set("TMPDIR", Path::new(""));
    let dir = runtime_dir();
    if let Ok(dir) = &dir {
        assert_eq!(dir, &Path::new("/tmp").join(format!("shmsock-{uid}")));
    }
    assert!(dir.is_ok() || dir.unwrap_err().kind() == ErrorKind::PermissionDenied);

    // SHMSOCK_RUNTIME_DIR wins over the others.
    let own = scratch.path().join("own");
    set("SHMSOCK_RUNTIME_DIR", &own);
    set("XDG_RUNTIME_DIR", &scratch.path().join("xdg"));
    assert_eq!(runtime_dir().unwrap(), own);

    // A directory others may enter is refused by a server and by a client.
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(runtime_dir().unwrap_err().kind(), ErrorKind::PermissionDenied);
    assert!(matches!(endpoint::bind("rtdir"), Err(e) if e.kind() == ErrorKind::PermissionDenied));
    assert_eq!(endpoint::connect("rtdir").unwrap_err().kind(), ErrorKind::PermissionDenied);

    // So is a symbolic link, even to a private directory.
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = scratch.path().join("link");
    std::os::unix::fs::symlink(&own, &link).unwrap();
    set("SHMSOCK_RUNTIME_DIR", &link);
    assert_eq!(runtime_dir().unwrap_err().kind(), ErrorKind::PermissionDenied);
    assert_eq!(endpoint::connect("rtdir").unwrap_err().kind(), ErrorKind::PermissionDenied);
}
