//! `shmsock keygen`: new key files, and the public key or fingerprint of existing ones.

use std::path::{Path, PathBuf};

use serde::Serialize;
use shmsock::{ErrorKind, Keypair, PublicKey};

use crate::error::{code, CliError};
use crate::keys;
use crate::output::{json_line, write_stdout};

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

/// How `keygen` reports.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Lines for people (and `grep`).
    Text,
    /// Nothing but errors (`-q`).
    Quiet,
    /// One JSON object on stdout (`--json`).
    Json,
}

/// What `keygen --json` prints. The field names are stable.
#[derive(Serialize)]
struct KeyJson {
    public_key: String,
    fingerprint: String,
    /// The key file written (only when a key was generated).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    /// The public key file written beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    public_file: Option<String>,
}

impl KeyJson {
    fn of(public: &PublicKey) -> KeyJson {
        KeyJson { public_key: public.to_string(), fingerprint: public.fingerprint(), file: None, public_file: None }
    }
}

/// Runs `keygen` on `file` (default [`DEFAULT_KEY_FILE`]).
pub fn run(file: Option<&Path>, action: Action, output: Output) -> Result<u8, CliError> {
    let path = file.unwrap_or(Path::new(DEFAULT_KEY_FILE));
    let text = match action {
        Action::Generate { force } => {
            let keypair = generate(path, force)?;
            let public = keypair.public();
            let public_path = public_file_of(path);
            match output {
                Output::Quiet => String::new(),
                Output::Json => json_line(&KeyJson {
                    file: Some(path.display().to_string()),
                    public_file: Some(public_path.display().to_string()),
                    ..KeyJson::of(public)
                })?,
                Output::Text => {
                    crate::error::eprint_line(&format!(
                        "shmsock: wrote the keypair to {} (mode 0600: keep it secret) and the public key to {}",
                        path.display(),
                        public_path.display()
                    ));
                    format!("public-key: {public}\nfingerprint: {}\n", public.fingerprint())
                }
            }
        }
        Action::PrintPublic => {
            let keypair = keys::load_identity(path)?;
            match output {
                Output::Json => json_line(&KeyJson::of(keypair.public()))?,
                _ => format!("{}\n", keypair.public()),
            }
        }
        Action::Fingerprint => {
            let public = keys::public_key_in_file(path)?;
            match output {
                Output::Json => json_line(&KeyJson::of(&public))?,
                _ => format!("{} {public}\n", public.fingerprint()),
            }
        }
    };
    write_stdout(text.as_bytes())
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
    Ok(keypair)
}
