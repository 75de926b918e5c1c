//! Static keys: X25519 keypairs, the one text form of public keys, fingerprints,
//! and key files.
//!
//! Text forms (PROTOCOL.md, "Keys and their text form"):
//! - public key: `shmsock-pk:` followed by the 32 bytes in unpadded base64url (43 characters);
//! - secret key: `shmsock-sk:` likewise;
//! - fingerprint: the first 8 bytes of BLAKE2b-256(public key) as hex in groups of
//!   two bytes, e.g. `3f2a:9c11:07be:55d0`.
//!
//! A key file is UTF-8 text: `#` comments, blank lines, and exactly one
//! `public-key: <text>` and one `secret-key: <text>` line. It is written with mode
//! 0600, and a key file that its group or others can read is refused, as ssh does.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{Error, ErrorKind, Result};
use crate::sodium::{self, Blake2b, Secret};

/// Prefix of the text form of a public key.
pub const PUBLIC_KEY_PREFIX: &str = "shmsock-pk:";
/// Prefix of the text form of a secret key.
pub const SECRET_KEY_PREFIX: &str = "shmsock-sk:";
/// Length of a raw key in bytes.
pub const KEY_LEN: usize = 32;

/// A static X25519 public key: who a peer is.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// The key from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> PublicKey {
        PublicKey(bytes)
    }

    /// The key from a byte slice, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            Error::new(ErrorKind::InvalidKey, format!("a public key is {KEY_LEN} bytes long, not {}", bytes.len()))
        })?;
        Ok(PublicKey(arr))
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The text form, `shmsock-pk:<base64url>`.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// Parses the text form (surrounding white space is ignored).
    pub fn from_text(text: &str) -> Result<PublicKey> {
        decode_key_text(text, PUBLIC_KEY_PREFIX, "public").map(PublicKey)
    }

    /// A short fingerprint for display, e.g. `3f2a:9c11:07be:55d0`.
    pub fn fingerprint(&self) -> String {
        let mut digest = [0u8; 32];
        let mut h = Blake2b::new(32);
        h.update(&self.0);
        h.finish_into(&mut digest);
        digest[..8].chunks(2).map(|pair| format!("{:02x}{:02x}", pair[0], pair[1])).collect::<Vec<_>>().join(":")
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_text())
    }
}

impl FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<PublicKey> {
        PublicKey::from_text(s)
    }
}

fn decode_key_text(text: &str, prefix: &str, what: &str) -> Result<[u8; KEY_LEN]> {
    let text = text.trim();
    let body = text.strip_prefix(prefix).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("a {what} key in text form starts with '{prefix}' (got '{}')", shorten(text)),
        )
    })?;
    let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|e| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("the {what} key '{}' is not valid unpadded base64url: {e}", shorten(text)),
        )
    })?;
    let arr: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
        Error::new(
            ErrorKind::InvalidKey,
            format!("the {what} key '{}' holds {} bytes; a key holds {KEY_LEN}", shorten(text), bytes.len()),
        )
    })?;
    Ok(arr)
}

/// At most 60 characters of untrusted text, for error messages.
fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        s.push('…');
    }
    s
}

/// A static X25519 keypair. The secret is zeroed when the keypair is dropped.
#[derive(Clone)]
pub struct Keypair {
    secret: Secret<KEY_LEN>,
    public: PublicKey,
}

impl Keypair {
    /// A fresh random keypair.
    pub fn generate() -> Keypair {
        Keypair::from_secret(Secret::random())
    }

    /// The keypair of a 32-byte secret (X25519 clamps it when used).
    pub fn from_secret_bytes(secret: [u8; KEY_LEN]) -> Keypair {
        let mut s = Secret::zero();
        s.0 = secret;
        Keypair::from_secret(s)
    }

    fn from_secret(secret: Secret<KEY_LEN>) -> Keypair {
        let public = PublicKey(sodium::x25519_base(secret.expose()));
        Keypair { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The secret scalar. Handle with care: it is the identity of this peer.
    pub fn secret_bytes(&self) -> &[u8; KEY_LEN] {
        self.secret.expose()
    }

    /// The key file text of this keypair.
    pub fn to_file_text(&self) -> String {
        format!(
            "# shmsock keypair (X25519). Keep this file secret: mode 0600, owner only.\n\
             public-key: {}\n\
             secret-key: {SECRET_KEY_PREFIX}{}\n",
            self.public.to_text(),
            URL_SAFE_NO_PAD.encode(self.secret.expose())
        )
    }

    /// Parses key file text. `origin` names the source in error messages.
    pub fn from_file_text(text: &str, origin: &str) -> Result<Keypair> {
        let bad = |why: String| Error::new(ErrorKind::InvalidKey, format!("key file {origin}: {why}"));
        let mut public = None;
        let mut secret = None;
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (field, value) =
                line.split_once(':').ok_or_else(|| bad(format!("line {} is not 'field: value'", number + 1)))?;
            let slot = match field.trim() {
                "public-key" => &mut public,
                "secret-key" => &mut secret,
                other => return Err(bad(format!("line {}: unknown field '{}'", number + 1, shorten(other)))),
            };
            if slot.is_some() {
                return Err(bad(format!("line {}: field '{}' appears twice", number + 1, field.trim())));
            }
            *slot = Some(value.trim().to_string());
        }
        let secret_text = secret.ok_or_else(|| bad("no 'secret-key:' line".into()))?;
        let public_text = public.ok_or_else(|| bad("no 'public-key:' line".into()))?;
        let mut secret_bytes = Secret::zero();
        secret_bytes.0 =
            decode_key_text(&secret_text, SECRET_KEY_PREFIX, "secret").map_err(|e| bad(e.message().into()))?;
        let keypair = Keypair::from_secret(secret_bytes);
        let stated = PublicKey::from_text(&public_text).map_err(|e| bad(e.message().into()))?;
        if stated != keypair.public {
            return Err(bad(
                "the public key does not belong to the secret key (the file was edited or mixed up)".into()
            ));
        }
        Ok(keypair)
    }

    /// Loads a key file, refusing one that group or others can read or write.
    pub fn load(path: impl AsRef<Path>) -> Result<Keypair> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let meta = fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::new(ErrorKind::NotFound, format!("key file {shown} does not exist")),
            _ => Error::io(&format!("reading key file {shown}"), e),
        })?;
        if !meta.is_file() {
            return Err(Error::new(ErrorKind::InvalidKey, format!("key file {shown} is not a regular file")));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::new(
                ErrorKind::InsecureKeyFile,
                format!(
                    "key file {shown} has mode {mode:04o}, so other users can read it; \
                     run 'chmod 600 {shown}' (and consider the key compromised if others did read it)"
                ),
            ));
        }
        if meta.len() > 64 * 1024 {
            return Err(Error::new(
                ErrorKind::InvalidKey,
                format!("key file {shown} is {} bytes; a key file is a few lines", meta.len()),
            ));
        }
        let bytes = fs::read(path).map_err(|e| Error::io(&format!("reading key file {shown}"), e))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::new(ErrorKind::InvalidKey, format!("key file {shown} is not UTF-8 text")))?;
        Keypair::from_file_text(&text, &shown)
    }

    /// Writes a new key file with mode 0600. Refuses to overwrite an existing file,
    /// so an identity is never lost by accident, and never writes through a
    /// symbolic link (`O_CREAT | O_EXCL | O_NOFOLLOW`): one planted at `path` in a
    /// shared directory is refused, its target untouched.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let mut file = create_exclusive(path, 0o600).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists if is_symlink(path) => Error::new(
                ErrorKind::InvalidArgument,
                format!("key file {shown} is a symbolic link; refusing to write a key through it"),
            ),
            std::io::ErrorKind::AlreadyExists => Error::new(
                ErrorKind::InvalidArgument,
                format!("key file {shown} already exists; remove it first or choose another path"),
            ),
            _ => Error::io(&format!("creating key file {shown}"), e),
        })?;
        // The umask cannot widen 0600, but a pre-set ACL could: make it explicit.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&format!("setting mode 0600 on {shown}"), e))?;
        let mut text = self.to_file_text();
        let written = file.write_all(text.as_bytes()).and_then(|_| file.sync_all());
        // SAFETY of secrecy, not memory: scrub our copy of the secret text.
        // String's bytes are valid UTF-8 zeros after this.
        unsafe { sodium::memzero(text.as_bytes_mut()) };
        written.map_err(|e| Error::io(&format!("writing key file {shown}"), e))
    }
}

impl PublicKey {
    /// Writes a public key file (`.pub`): the text form and a newline, mode 0644.
    /// An existing file at `path` is replaced atomically, and a symbolic link
    /// there is replaced, never followed: the text goes to a new temporary file
    /// beside `path` (`O_CREAT | O_EXCL | O_NOFOLLOW`), renamed over `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let file_name = path.file_name().ok_or_else(|| {
            Error::new(ErrorKind::InvalidArgument, format!("public key file {shown} does not name a file"))
        })?;
        let mut random = [0u8; 8];
        sodium::random_bytes(&mut random);
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(file_name);
        temp_name.push(format!(".tmp-{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>()));
        let temp = path.with_file_name(temp_name);
        let written = create_exclusive(&temp, 0o644).and_then(|mut file| {
            file.set_permissions(fs::Permissions::from_mode(0o644))?;
            writeln!(file, "{}", self.to_text())?;
            file.sync_all()?;
            fs::rename(&temp, path)
        });
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(Error::io(&format!("writing public key file {shown}"), e));
        }
        Ok(())
    }
}

/// Creates a new file at `path` with `mode`, failing if anything (a symbolic
/// link included) is there already.
fn create_exclusive(path: &Path, mode: u32) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(libc::O_NOFOLLOW).open(path)
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair {{ public: {}, secret: .. }}", self.public.to_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let kp = Keypair::generate();
        let text = kp.public().to_text();
        assert!(text.starts_with(PUBLIC_KEY_PREFIX));
        assert_eq!(text.len(), PUBLIC_KEY_PREFIX.len() + 43);
        assert_eq!(PublicKey::from_text(&text).unwrap(), *kp.public());
        assert_eq!(format!(" {text}\n").parse::<PublicKey>().unwrap(), *kp.public());
    }

    #[test]
    fn malformed_text_is_rejected_with_reason() {
        for (bad, needle) in [
            ("", "starts with"),
            ("pk:AAAA", "starts with"),
            ("shmsock-pk:!!!!", "base64url"),
            ("shmsock-pk:AAAA", "holds 3 bytes"),
            ("shmsock-sk:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "starts with"),
        ] {
            let err = PublicKey::from_text(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidKey);
            assert!(err.message().contains(needle), "{bad}: {}", err.message());
        }
    }

    #[test]
    fn fingerprint_is_short_and_stable() {
        let pk = PublicKey::from_bytes([9u8; 32]);
        let fp = pk.fingerprint();
        assert_eq!(fp.len(), 19);
        assert_eq!(fp, pk.fingerprint());
        assert_ne!(fp, PublicKey::from_bytes([8u8; 32]).fingerprint());
    }

    #[test]
    fn file_round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        let kp = Keypair::generate();
        kp.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = Keypair::load(&path).unwrap();
        assert_eq!(loaded.public(), kp.public());
        assert_eq!(loaded.secret_bytes(), kp.secret_bytes());
        let again = kp.save(&path).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn readable_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id.key");
        Keypair::generate().save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keypair::load(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InsecureKeyFile);
        assert!(err.message().contains("chmod 600"));
    }

    #[test]
    fn missing_key_file_is_not_found() {
        let err = Keypair::load("/nonexistent/shmsock/key").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn malformed_files_say_what_is_wrong() {
        let kp = Keypair::generate();
        let good = kp.to_file_text();
        let other = Keypair::generate().public().to_text();
        let cases = [
            (String::new(), "no 'secret-key:'"),
            (good.replace("public-key", "publik-key"), "unknown field"),
            (good.lines().filter(|l| !l.starts_with("public")).collect::<Vec<_>>().join("\n"), "no 'public-key:'"),
            (format!("{good}{}\n", good.lines().nth(1).unwrap()), "appears twice"),
            (good.replace(&kp.public().to_text(), &other), "does not belong"),
            ("garbage line\n".to_string(), "not 'field: value'"),
        ];
        for (text, needle) in cases {
            let err = Keypair::from_file_text(&text, "t").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidKey);
            assert!(err.message().contains(needle), "{needle}: {}", err.message());
        }
        assert_eq!(Keypair::from_file_text(&good, "t").unwrap().public(), kp.public());
    }
}
