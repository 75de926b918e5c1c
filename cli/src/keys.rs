//! Key arguments: this side's identity (`--key FILE`) and the public keys of
//! others (`--server-key KEY`, `--allow KEY`), given as `shmsock-pk:` text or as
//! the path of a file holding one (a key file, or a `.pub` file).

use std::io::Read;
use std::path::Path;

use shmsock::keys::{PUBLIC_KEY_PREFIX, SECRET_KEY_PREFIX};
use shmsock::{ErrorKind, Keypair, PublicKey};

use crate::error::{code, CliError};

/// A file holding a key is a few lines; anything larger is not one.
const MAX_KEY_FILE: u64 = 64 * 1024;

const KEY_FORMS: &str = "A KEY is the `shmsock-pk:...` text printed by `shmsock keygen` or `shmsock listen`, \
                         or the path of a key file or of its .pub file";

/// Loads this side's keypair from a key file (mode 0600).
pub fn load_identity(path: &Path) -> Result<Keypair, CliError> {
    let what = format!("loading key file {}", path.display());
    Keypair::load(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => CliError::new(
            code::KEY,
            what,
            "no such file",
            format!("Create one with `shmsock keygen -f {}`", path.display()),
        ),
        ErrorKind::InsecureKeyFile => CliError::new(
            code::KEY,
            what,
            "other users can read it",
            format!("Run `chmod 600 {}`, and consider the key compromised if others did read it", path.display()),
        ),
        ErrorKind::InvalidKey => CliError::new(code::KEY, what, e.message(), "Give a file written by `shmsock keygen`"),
        _ => CliError::core(what, &e),
    })
}

/// Parses a public key argument of option `option` (for messages).
pub fn parse_public_key(arg: &str, option: &str) -> Result<PublicKey, CliError> {
    let text = arg.trim();
    let what = format!("reading {option}");
    if text.starts_with(PUBLIC_KEY_PREFIX) {
        return PublicKey::from_text(text).map_err(|e| CliError::new(code::KEY, what, e.message(), KEY_FORMS));
    }
    if text.starts_with(SECRET_KEY_PREFIX) {
        return Err(CliError::new(
            code::KEY,
            what,
            "that is a secret key",
            "Never pass a secret key on the command line; pass the public key (`shmsock keygen -y -f FILE` prints it)",
        ));
    }
    public_key_from_file(Path::new(arg), &what)
}

/// The public key in the file at `path` (for `keygen -l -f FILE`).
pub fn public_key_in_file(path: &Path) -> Result<PublicKey, CliError> {
    public_key_from_file(path, &format!("reading {}", path.display()))
}

/// The public key in a file: a `.pub` file (the text alone) or a key file (its
/// `public-key:` line).
fn public_key_from_file(path: &Path, what: &str) -> Result<PublicKey, CliError> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("'{shown}' is neither a public key nor an existing file")
            }
            _ => format!("opening {shown}: {e}"),
        };
        CliError::new(code::KEY, what, why, KEY_FORMS)
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::new(code::KEY, what, format!("reading {shown}: {e}"), KEY_FORMS))?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(CliError::new(code::KEY, what, format!("{shown} is too large to be a key file"), KEY_FORMS));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::new(code::KEY, what, format!("{shown} is not text"), KEY_FORMS))?;
    for line in text.lines().map(str::trim) {
        let candidate = match line.strip_prefix("public-key:") {
            Some(rest) => rest.trim(),
            None if line.starts_with(PUBLIC_KEY_PREFIX) => line,
            None => continue,
        };
        return PublicKey::from_text(candidate)
            .map_err(|e| CliError::new(code::KEY, what, format!("{shown}: {}", e.message()), KEY_FORMS));
    }
    Err(CliError::new(code::KEY, what, format!("{shown} holds no shmsock public key"), KEY_FORMS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_files_give_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let kp = Keypair::generate();
        let text = kp.public().to_text();
        assert_eq!(parse_public_key(&text, "--server-key").unwrap(), *kp.public());
        let key_file = dir.path().join("k");
        kp.save(&key_file).unwrap();
        assert_eq!(parse_public_key(key_file.to_str().unwrap(), "--server-key").unwrap(), *kp.public());
        let pub_file = dir.path().join("k.pub");
        std::fs::write(&pub_file, format!("# a comment\n{text}\n")).unwrap();
        assert_eq!(parse_public_key(pub_file.to_str().unwrap(), "--server-key").unwrap(), *kp.public());
    }

    #[test]
    fn bad_keys_are_key_errors() {
        for bad in ["shmsock-pk:AAAA", "shmsock-sk:AAAA", "/nonexistent/key", "not-a-key"] {
            let e = parse_public_key(bad, "--server-key").unwrap_err();
            assert_eq!(e.code(), code::KEY, "{bad}");
            assert!(!e.line().contains('\n'));
        }
    }
}
