//! The per-user runtime directory that holds endpoint sockets (PROTOCOL.md
//! section 9).

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;

use super::process::current_uid;
use crate::error::{Error, ErrorKind, Result};

/// The per-user runtime directory holding endpoint sockets, created 0700.
///
/// `$SHMSOCK_RUNTIME_DIR` if set, else `$XDG_RUNTIME_DIR/shmsock`, else
/// `$TMPDIR/shmsock-<uid>`, else `/tmp/shmsock-<uid>`, where a variable set to
/// the empty string counts as unset (PROTOCOL.md section 9). The directory must
/// belong to us and be private.
pub fn runtime_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|d| !d.is_empty()).map(PathBuf::from);
    let dir = if let Some(dir) = var("SHMSOCK_RUNTIME_DIR") {
        dir
    } else if let Some(xdg) = var("XDG_RUNTIME_DIR") {
        xdg.join("shmsock")
    } else {
        // Not std::env::temp_dir(): it takes an empty TMPDIR as the current directory.
        var("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp")).join(format!("shmsock-{}", current_uid()))
    };
    // Connecting asks for the directory every time: after one full check, a
    // single lstat proves it is still the same private directory of ours.
    static CHECKED: std::sync::Mutex<Option<(PathBuf, u64, u64)>> = std::sync::Mutex::new(None);
    let checked = CHECKED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    if let Some((path, dev, ino)) = checked {
        if path == dir {
            if let Ok(meta) = std::fs::symlink_metadata(&dir) {
                if meta.dev() == dev && meta.ino() == ino && is_private_dir(&meta) {
                    return Ok(dir);
                }
            }
        }
    }
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) => return Err(Error::io(&format!("creating runtime directory {}", dir.display()), e)),
    }
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| Error::io(&format!("checking {}", dir.display()), e))?;
    if !is_private_dir(&meta) {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "runtime directory {} is not a private directory of this user (mode {:04o}, owner {}); \
                 remove it or set SHMSOCK_RUNTIME_DIR to a directory with mode 0700",
                dir.display(),
                meta.permissions().mode() & 0o7777,
                meta.uid()
            ),
        ));
    }
    *CHECKED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((dir.clone(), meta.dev(), meta.ino()));
    Ok(dir)
}

/// A directory (not a link to one) of this user that nobody else may use.
fn is_private_dir(meta: &std::fs::Metadata) -> bool {
    meta.is_dir() && meta.uid() == current_uid() && meta.permissions().mode() & 0o077 == 0
}
