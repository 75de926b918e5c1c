//! Small helpers shared by the example programs: argument parsing without a
//! dependency, and key files.

use std::path::Path;

use shmsock::{Keypair, PublicKey, Result};

/// Loads the keypair at `path`, creating (and saving) a new one if the file does
/// not exist yet.
pub fn load_or_create(path: &Path) -> Result<Keypair> {
    if path.exists() {
        Keypair::load(path)
    } else {
        let keypair = Keypair::generate();
        keypair.save(path)?;
        Ok(keypair)
    }
}

/// Reads a public key given either as text (`shmsock-pk:...`) or as the path of
/// a key file whose public half is wanted.
pub fn public_key_arg(arg: &str) -> Result<PublicKey> {
    if arg.starts_with(shmsock::keys::PUBLIC_KEY_PREFIX) {
        PublicKey::from_text(arg)
    } else {
        Ok(*Keypair::load(arg)?.public())
    }
}

/// Exits with a one-line error, as command-line tools do.
pub fn die(context: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("error: {context}: {err}");
    std::process::exit(1)
}
