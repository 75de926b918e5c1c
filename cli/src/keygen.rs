//! `shmsock keygen`: new key files, and the public key or fingerprint of existing ones.

use std::io::Write;
use std::path::{Path, PathBuf};

use shmsock::{ErrorKind, Keypair};

use crate::error::{code, CliError};
use crate::keys;

/// The key file written or read when -f is not given.
pub const DEFAULT_KEY_FILE: &str = "shmsock.key";

/// What `keygen` does.
pub enum Action {
    /// Write a new key file (replacing an existing one only when `force`).
    Generate {
        /// Replace an existing file.
        force: bool,
    },
    /// Print the public key of a key file (`-y`).
    PrintPublic,
    /// Print the fingerprint and public key of a key file or .pub file (`-l`).
    Fingerprint,
}

/// Runs `keygen` on `file` (default [`DEFAULT_KEY_FILE`]).
pub fn run(file: Option<&Path>, action: Action) -> Result<u8, CliError> {
    let path = file.unwrap_or(Path::new(DEFAULT_KEY_FILE));
    let mut out = std::io::stdout().lock();
    let lines = match action {
        Action::Generate { force } => {
            let keypair = generate(path, force)?;
            let public = keypair.public();
            format!("public-key: {public}\nfingerprint: {}\n", public.fingerprint())
        }
        Action::PrintPublic => format!("{}\n", keys::load_identity(path)?.public()),
        Action::Fingerprint => {
            let public = keys::public_key_in_file(path)?;
            format!("{} {public}\n", public.fingerprint())
        }
    };
    out.write_all(lines.as_bytes()).and_then(|_| out.flush()).map_err(|e| CliError::io("writing to stdout", &e))?;
    Ok(code::OK)
}

/// The path of the public key file written beside `path`.
pub fn public_file_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".pub");
    PathBuf::from(name)
}

fn generate(path: &Path, force: bool) -> Result<Keypair, CliError> {
    let shown = path.display();
    let what = format!("writing key file {shown}");
    let exists = || {
        CliError::new(
            code::FAILED,
            what.clone(),
            "the file already exists",
            "Use --force to replace it (the key in it is lost for good), or choose another path with -f FILE",
        )
    };
    if path.symlink_metadata().is_ok() {
        if !force {
            return Err(exists());
        }
        std::fs::remove_file(path).map_err(|e| CliError::io(format!("removing the old key file {shown}"), &e))?;
    }
    let keypair = Keypair::generate();
    keypair.save(path).map_err(|e| match e.kind() {
        // Another process created the file since we looked.
        ErrorKind::InvalidArgument => exists(),
        _ => CliError::core(what.clone(), &e),
    })?;
    let public_path = public_file_of(path);
    // Replaced, never written through: a symbolic link planted at X.pub in a
    // shared directory is not followed.
    keypair
        .public()
        .save(&public_path)
        .map_err(|e| CliError::core(format!("writing public key file {}", public_path.display()), &e))?;
    crate::error::eprint_line(&format!(
        "shmsock: wrote the keypair to {shown} (mode 0600: keep it secret) and the public key to {}",
        public_path.display()
    ));
    Ok(keypair)
}
