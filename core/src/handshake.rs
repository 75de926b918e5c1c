//! The handshake: Noise_IK_25519_ChaChaPoly_BLAKE2b as an I/O-free state machine,
//! and the payloads that negotiate version, cipher, limits and the segment.
//!
//! Bytes in, bytes out: [`Initiator`] writes the hello (Noise message 1) and reads
//! the reply (message 2); [`Responder`] reads the hello, decides (allow-list,
//! negotiation), and writes the reply. Neither touches a socket. PROTOCOL.md,
//! "Handshake", gives every byte; `tests/vectors/handshake.json` pins them.

use crate::cipher::{CipherSuite, RecvCipher, SendCipher};
use crate::error::{Error, ErrorKind, Result};
use crate::kdf::HASHLEN;
use crate::keys::{Keypair, PublicKey, KEY_LEN};
use crate::noise::{SymmetricState, MAX_MESSAGE_LEN, TAG_LEN};
use crate::sodium::{self, Secret};

// Names and backends are owned by `endpoint` and `segment`; the handshake
// carries them, and these paths stay for callers that used them from here.
pub use crate::endpoint::{validate_endpoint_name, MAX_NAME_LEN};
pub use crate::segment::Backend;

/// The handshake format bound into the prologue. Protocol versions are
/// negotiated inside the payloads; this changes only if the handshake itself does.
pub const HANDSHAKE_FORMAT: u16 = 1;
/// The protocol versions this implementation speaks.
pub const SUPPORTED_VERSIONS: &[u16] = &[1];
/// Smallest ring data capacity (bytes).
pub const MIN_RING_SIZE: u32 = 4096;
/// Largest ring data capacity (bytes).
pub const MAX_RING_SIZE: u32 = 1 << 30;
/// Longest name of a named-backend segment (bytes; macOS allows 31).
pub const MAX_SEGMENT_NAME_LEN: usize = 31;

const HELLO_FIXED_LEN: usize = KEY_LEN + (KEY_LEN + TAG_LEN) + TAG_LEN;
const REPLY_FIXED_LEN: usize = KEY_LEN + TAG_LEN;

/// What the client offers in its hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOffer {
    /// Protocol versions it speaks.
    pub versions: Vec<u16>,
    /// Ciphers it accepts, in preference order.
    pub ciphers: Vec<CipherSuite>,
    /// The largest message it accepts to receive.
    pub max_message: u32,
    /// The ring capacity it asks for (0: the server decides).
    pub ring_size: u32,
    /// The backends it can map (a set of [`Backend::bit`]s).
    pub backends: u8,
}

/// What the server decided, sent in its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerChoice {
    /// The protocol version of the connection.
    pub version: u16,
    /// The transport cipher.
    pub cipher: CipherSuite,
    /// The largest message the server accepts to receive.
    pub max_message: u32,
    /// The capacity of each ring in bytes (a power of two).
    pub ring_size: u32,
    /// How the segment is passed.
    pub backend: Backend,
    /// The segment's name (named backend only; empty for memfd).
    pub segment_name: String,
}

/// The server's rules for accepting clients.
#[derive(Clone, Debug)]
pub struct ServerPolicy {
    /// Protocol versions the server speaks.
    pub versions: Vec<u16>,
    /// Ciphers the server accepts.
    pub ciphers: Vec<CipherSuite>,
    /// The largest message the server accepts to receive.
    pub max_message: u32,
    /// Ring capacity used when the client asks for none.
    pub ring_size: u32,
    /// Which client keys may connect.
    pub allowed: AllowedClients,
    /// The backend the server prefers.
    pub backend: Backend,
}

/// Which client static keys a server accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AllowedClients {
    /// Any client that completes the handshake.
    #[default]
    Any,
    /// Only these keys.
    Only(Vec<PublicKey>),
}

impl AllowedClients {
    /// True when `key` may connect.
    pub fn allows(&self, key: &PublicKey) -> bool {
        match self {
            AllowedClients::Any => true,
            AllowedClients::Only(keys) => keys.iter().any(|k| sodium::constant_time_eq(k.as_bytes(), key.as_bytes())),
        }
    }
}

/// Why a server refused a hello, as sent in a REJECT control message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum RejectReason {
    /// The hello did not decrypt: the client pinned another key, or named another endpoint.
    WrongServerKey = 1,
    /// The client's key is not on the allow-list.
    ClientNotAllowed = 2,
    /// No common protocol version.
    NoCommonVersion = 3,
    /// No common cipher.
    NoCommonCipher = 4,
    /// The hello was malformed or truncated.
    Malformed = 5,
    /// The client's uid may not connect.
    UidNotAllowed = 6,
    /// The server could not set up the connection (memory, file descriptors).
    ServerError = 7,
}

impl RejectReason {
    /// The reason with this wire code.
    pub fn from_code(code: u16) -> Option<RejectReason> {
        use RejectReason::*;
        [WrongServerKey, ClientNotAllowed, NoCommonVersion, NoCommonCipher, Malformed, UidNotAllowed, ServerError]
            .into_iter()
            .find(|r| *r as u16 == code)
    }

    /// The reason to send for a failure of `Responder::read_hello` or of set-up.
    pub fn for_error(kind: ErrorKind) -> RejectReason {
        match kind {
            ErrorKind::ServerKeyMismatch => RejectReason::WrongServerKey,
            ErrorKind::HandshakeRejected => RejectReason::ClientNotAllowed,
            ErrorKind::ProtocolVersion => RejectReason::NoCommonVersion,
            ErrorKind::NoCommonCipher => RejectReason::NoCommonCipher,
            ErrorKind::PermissionDenied => RejectReason::UidNotAllowed,
            ErrorKind::ProtocolViolation | ErrorKind::AuthenticationFailed | ErrorKind::InvalidKey => {
                RejectReason::Malformed
            }
            _ => RejectReason::ServerError,
        }
    }

    /// The error a client reports for this reason.
    pub fn to_error(self, endpoint: &str, detail: &str) -> Error {
        let (kind, what) = match self {
            RejectReason::WrongServerKey => (
                ErrorKind::ServerKeyMismatch,
                "the server could not decrypt our handshake: the server key we pinned is not the key this server holds (check --server-key / server_key)",
            ),
            RejectReason::ClientNotAllowed => (
                ErrorKind::HandshakeRejected,
                "the server does not allow our public key; ask its operator to add it to the allow-list",
            ),
            RejectReason::NoCommonVersion => (ErrorKind::ProtocolVersion, "the server speaks none of our protocol versions; upgrade one side"),
            RejectReason::NoCommonCipher => (
                ErrorKind::NoCommonCipher,
                "the server accepts none of the ciphers we offer (one side may require a cipher the other lacks)",
            ),
            RejectReason::Malformed => (ErrorKind::ProtocolViolation, "the server found our handshake malformed"),
            RejectReason::UidNotAllowed => (ErrorKind::HandshakeRejected, "the server does not allow our user id to connect"),
            RejectReason::ServerError => (ErrorKind::ResourceExhausted, "the server could not set up the connection"),
        };
        let detail = if detail.is_empty() { String::new() } else { format!(" (server says: {detail})") };
        Error::new(kind, format!("connecting to '{endpoint}': {what}{detail}"))
    }
}

/// The result of a completed handshake, on either side.
pub struct Session {
    /// The key and nonce for frames this side sends.
    pub send: SendCipher,
    /// The key and nonce for frames this side receives.
    pub recv: RecvCipher,
    /// The Noise handshake hash (the same on both sides).
    pub handshake_hash: [u8; HASHLEN],
    /// The peer's static public key.
    pub peer: PublicKey,
    /// What the client offered.
    pub offer: ClientOffer,
    /// What the server decided.
    pub choice: ServerChoice,
}

/// The prologue: `"shmsock"`, the handshake format (u16le), the endpoint name's
/// length (u8) and the name.
pub fn prologue(endpoint: &str) -> Result<Vec<u8>> {
    validate_endpoint_name(endpoint)?;
    let mut p = Vec::with_capacity(10 + endpoint.len());
    p.extend_from_slice(b"shmsock");
    p.extend_from_slice(&HANDSHAKE_FORMAT.to_le_bytes());
    p.push(endpoint.len() as u8);
    p.extend_from_slice(endpoint.as_bytes());
    Ok(p)
}

fn malformed(what: &str) -> Error {
    Error::new(ErrorKind::ProtocolViolation, format!("malformed handshake: {what}"))
}

/// A little reader over untrusted payload bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(malformed(&format!("truncated at {what}")));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn finish(self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(malformed(&format!("{} unexpected trailing bytes", self.bytes.len())))
        }
    }
}

impl ClientOffer {
    /// The offer this process makes by default.
    pub fn local(require_chacha: bool, max_message: u32, ring_size: u32, backends: u8) -> ClientOffer {
        ClientOffer {
            versions: SUPPORTED_VERSIONS.to_vec(),
            ciphers: CipherSuite::local_offer(require_chacha),
            max_message,
            ring_size,
            backends,
        }
    }

    /// The hello payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.push(self.versions.len() as u8);
        for v in &self.versions {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(self.ciphers.len() as u8);
        out.extend(self.ciphers.iter().map(|c| c.id()));
        out.extend_from_slice(&self.max_message.to_le_bytes());
        out.extend_from_slice(&self.ring_size.to_le_bytes());
        out.push(self.backends);
        out
    }

    /// Parses a hello payload. Unknown cipher ids and backend bits are skipped so
    /// that later versions can offer more.
    pub fn decode(bytes: &[u8]) -> Result<ClientOffer> {
        let mut r = Reader { bytes };
        let nversions = r.u8("version count")?;
        if nversions == 0 || nversions > 16 {
            return Err(malformed("version count must be 1 to 16"));
        }
        let versions = (0..nversions).map(|_| r.u16("versions")).collect::<Result<Vec<_>>>()?;
        let nciphers = r.u8("cipher count")?;
        if nciphers == 0 || nciphers > 16 {
            return Err(malformed("cipher count must be 1 to 16"));
        }
        let ciphers = r.take(nciphers as usize, "ciphers")?.iter().filter_map(|&id| CipherSuite::from_id(id)).collect();
        let max_message = r.u32("max message")?;
        let ring_size = r.u32("ring size")?;
        let backends = r.u8("backends")?;
        r.finish()?;
        Ok(ClientOffer { versions, ciphers, max_message, ring_size, backends })
    }
}

impl ServerChoice {
    /// The reply payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.segment_name.len());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.push(self.cipher.id());
        out.extend_from_slice(&self.max_message.to_le_bytes());
        out.extend_from_slice(&self.ring_size.to_le_bytes());
        out.push(self.backend as u8);
        out.push(self.segment_name.len() as u8);
        out.extend_from_slice(self.segment_name.as_bytes());
        out
    }

    /// Parses a reply payload and checks it against what the client offered.
    pub fn decode(bytes: &[u8], offer: &ClientOffer) -> Result<ServerChoice> {
        let mut r = Reader { bytes };
        let version = r.u16("version")?;
        let cipher_id = r.u8("cipher")?;
        let max_message = r.u32("max message")?;
        let ring_size = r.u32("ring size")?;
        let backend_id = r.u8("backend")?;
        let name_len = r.u8("segment name length")? as usize;
        let name = r.take(name_len, "segment name")?;
        r.finish()?;
        if !offer.versions.contains(&version) {
            return Err(malformed(&format!("the server chose version {version}, which we did not offer")));
        }
        let cipher = CipherSuite::from_id(cipher_id)
            .filter(|c| offer.ciphers.contains(c))
            .ok_or_else(|| malformed(&format!("the server chose cipher {cipher_id}, which we did not offer")))?;
        validate_ring_size(ring_size).map_err(|e| malformed(e.message()))?;
        if offer.ring_size != 0 && ring_size > offer.ring_size {
            return Err(malformed(&format!(
                "the server chose rings of {ring_size} bytes, larger than the {} we asked for",
                offer.ring_size
            )));
        }
        let backend = Backend::from_id(backend_id)
            .filter(|b| offer.backends & b.bit() != 0)
            .ok_or_else(|| malformed(&format!("the server chose backend {backend_id}, which we did not offer")))?;
        let segment_name = std::str::from_utf8(name).map_err(|_| malformed("segment name is not UTF-8"))?.to_string();
        match backend {
            Backend::Memfd if !segment_name.is_empty() => return Err(malformed("a memfd segment has no name")),
            Backend::Named => validate_segment_name(&segment_name)?,
            _ => {}
        }
        Ok(ServerChoice { version, cipher, max_message, ring_size, backend, segment_name })
    }
}

/// Checks a named-backend segment name: `/` then 1 to 30 of `[A-Za-z0-9._-]`.
pub fn validate_segment_name(name: &str) -> Result<()> {
    let body = name.strip_prefix('/').unwrap_or("");
    if body.is_empty()
        || name.len() > MAX_SEGMENT_NAME_LEN
        || !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(malformed("segment name must be '/' then 1 to 30 of A-Z a-z 0-9 . _ -"));
    }
    Ok(())
}

/// Checks a ring capacity: a power of two from 4 KiB to 1 GiB.
pub fn validate_ring_size(size: u32) -> Result<()> {
    if !size.is_power_of_two() || !(MIN_RING_SIZE..=MAX_RING_SIZE).contains(&size) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("ring size {size} must be a power of two from {MIN_RING_SIZE} to {MAX_RING_SIZE} bytes"),
        ));
    }
    Ok(())
}

/// The server's decision for a hello, before the segment exists.
pub fn negotiate(offer: &ClientOffer, policy: &ServerPolicy) -> Result<ServerChoice> {
    let version = offer.versions.iter().copied().filter(|v| policy.versions.contains(v)).max().ok_or_else(|| {
        Error::new(
            ErrorKind::ProtocolVersion,
            format!(
                "no common protocol version: the client speaks {:?}, this server {:?}",
                offer.versions, policy.versions
            ),
        )
    })?;
    let cipher = CipherSuite::choose(&offer.ciphers, &policy.ciphers).ok_or_else(|| {
        let names = |v: &[CipherSuite]| v.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ");
        Error::new(
            ErrorKind::NoCommonCipher,
            format!(
                "no common cipher: the client offers [{}], this server [{}]",
                names(&offer.ciphers),
                names(&policy.ciphers)
            ),
        )
    })?;
    // The server's ring size is both its default and its cap: a client may ask for
    // smaller rings, never for more memory than the server is willing to give.
    let ring_size = if offer.ring_size == 0 { policy.ring_size } else { offer.ring_size.min(policy.ring_size) };
    validate_ring_size(ring_size).map_err(|e| malformed(e.message()))?;
    let backend = [policy.backend, Backend::Memfd, Backend::Named]
        .into_iter()
        .find(|b| offer.backends & b.bit() != 0 && (cfg!(target_os = "linux") || *b == Backend::Named))
        .ok_or_else(|| malformed("the client offers no segment backend this server supports"))?;
    Ok(ServerChoice {
        version,
        cipher,
        max_message: policy.max_message,
        ring_size,
        backend,
        segment_name: String::new(),
    })
}

/// The client side of the handshake.
pub struct Initiator {
    state: SymmetricState,
    local: Keypair,
    ephemeral: Keypair,
    server: PublicKey,
    endpoint: String,
    offer: ClientOffer,
    sent_hello: bool,
    /// `es` computed ahead with the ephemeral key (see `handshake_cache`).
    es: Option<Secret<32>>,
}

impl Initiator {
    /// Starts a handshake with the server whose key is pinned as `server`,
    /// with the ephemeral key an earlier connect to that server prepared, if
    /// there is one (each is used once), else a fresh one.
    pub fn new(local: &Keypair, server: &PublicKey, endpoint: &str, offer: ClientOffer) -> Result<Initiator> {
        sodium::init()?;
        let (ephemeral, es) = match crate::handshake_cache::take_client_spare(server) {
            Some((ephemeral, es)) => (ephemeral, Some(es)),
            None => (Keypair::generate(), None),
        };
        let mut initiator = Initiator::with_ephemeral(local, server, endpoint, offer, ephemeral)?;
        initiator.es = es;
        Ok(initiator)
    }

    /// As [`new`](Initiator::new) with a given ephemeral key. Only for test vectors:
    /// reusing an ephemeral key destroys the handshake's security.
    #[doc(hidden)]
    pub fn with_ephemeral(
        local: &Keypair,
        server: &PublicKey,
        endpoint: &str,
        offer: ClientOffer,
        ephemeral: Keypair,
    ) -> Result<Initiator> {
        let mut state = SymmetricState::new();
        state.mix_hash(&prologue(endpoint)?);
        state.mix_hash(server.as_bytes()); // pre-message: <- s
        Ok(Initiator {
            state,
            local: local.clone(),
            ephemeral,
            server: *server,
            endpoint: endpoint.to_string(),
            offer,
            sent_hello: false,
            es: None,
        })
    }

    /// Noise message 1: `-> e, es, s, ss` with the offer as payload.
    pub fn write_hello(&mut self) -> Result<Vec<u8>> {
        if self.sent_hello {
            return Err(Error::new(ErrorKind::InvalidArgument, "the hello was already written"));
        }
        self.sent_hello = true;
        let mut out = Vec::with_capacity(HELLO_FIXED_LEN + 32);
        let e_pub = *self.ephemeral.public().as_bytes();
        out.extend_from_slice(&e_pub);
        self.state.mix_hash(&e_pub);
        let es = match self.es.take() {
            Some(es) => es,
            None => sodium::x25519(self.ephemeral.secret_bytes(), self.server.as_bytes())?,
        };
        self.state.mix_key(es.expose());
        self.state.encrypt_and_hash(self.local.public().as_bytes(), &mut out);
        // ss is the same for every connect between these two keys: kept.
        self.state.mix_key(crate::handshake_cache::client_static_dh(&self.local, &self.server)?.expose());
        self.state.encrypt_and_hash(&self.offer.encode(), &mut out);
        Ok(out)
    }

    /// Reads Noise message 2 (`<- e, ee, se` with the server's choice) and
    /// finishes the handshake.
    pub fn read_reply(mut self, msg: &[u8]) -> Result<Session> {
        if !self.sent_hello {
            return Err(Error::new(ErrorKind::InvalidArgument, "write the hello before reading the reply"));
        }
        if msg.len() < REPLY_FIXED_LEN || msg.len() > MAX_MESSAGE_LEN {
            return Err(malformed(&format!(
                "reply of {} bytes (expected {REPLY_FIXED_LEN} to {MAX_MESSAGE_LEN})",
                msg.len()
            )));
        }
        let mismatch = || {
            Error::new(
                ErrorKind::ServerKeyMismatch,
                format!(
                    "the server of '{}' could not prove it holds the pinned key {}: its reply does not decrypt",
                    self.endpoint, self.server
                ),
            )
        };
        let re: [u8; KEY_LEN] = msg[..KEY_LEN].try_into().map_err(|_| malformed("reply"))?;
        self.state.mix_hash(&re);
        let ee = sodium::x25519(self.ephemeral.secret_bytes(), &re)
            .map_err(|_| malformed("the server's ephemeral key is a low-order point"))?;
        self.state.mix_key(ee.expose());
        let se = sodium::x25519(self.local.secret_bytes(), &re)
            .map_err(|_| malformed("the server's ephemeral key is a low-order point"))?;
        self.state.mix_key(se.expose());
        let payload = self.state.decrypt_and_hash(&msg[KEY_LEN..]).map_err(|_| mismatch())?;
        let choice = ServerChoice::decode(&payload, &self.offer)?;
        let (to_server, to_client) = self.state.split();
        Ok(Session {
            send: SendCipher::new(choice.cipher, to_server),
            recv: RecvCipher::new(choice.cipher, to_client),
            handshake_hash: self.state.handshake_hash(),
            peer: self.server,
            offer: self.offer,
            choice,
        })
    }
}

/// The server side of the handshake.
pub struct Responder {
    state: SymmetricState,
    local: Keypair,
    ephemeral: Keypair,
    remote_ephemeral: Option<[u8; KEY_LEN]>,
    remote_static: Option<PublicKey>,
    offer: Option<ClientOffer>,
}

/// A hello the server accepted.
#[derive(Clone, Debug)]
pub struct Hello {
    /// The client's static public key (on the allow-list).
    pub client: PublicKey,
    /// What the client offered.
    pub offer: ClientOffer,
    /// What the server will answer (the transport fills in the segment name).
    pub choice: ServerChoice,
}

impl Responder {
    /// A responder for the endpoint `endpoint`, holding `local`.
    pub fn new(local: &Keypair, endpoint: &str) -> Result<Responder> {
        sodium::init()?;
        Responder::with_ephemeral(local, endpoint, Keypair::generate())
    }

    /// As [`new`](Responder::new) with a given ephemeral key. Only for test vectors.
    #[doc(hidden)]
    pub fn with_ephemeral(local: &Keypair, endpoint: &str, ephemeral: Keypair) -> Result<Responder> {
        let mut state = SymmetricState::new();
        state.mix_hash(&prologue(endpoint)?);
        state.mix_hash(local.public().as_bytes()); // pre-message: <- s
        Ok(Responder {
            state,
            local: local.clone(),
            ephemeral,
            remote_ephemeral: None,
            remote_static: None,
            offer: None,
        })
    }

    /// Reads Noise message 1, checks the client's key against the allow-list and
    /// negotiates. An error says which [`RejectReason`] to send.
    pub fn read_hello(&mut self, msg: &[u8], policy: &ServerPolicy) -> Result<Hello> {
        let local = self.local.clone();
        self.read_hello_with(msg, policy, |rs| sodium::x25519(local.secret_bytes(), rs.as_bytes()))
    }

    /// As [`read_hello`](Responder::read_hello), taking the static-static
    /// X25519 result for the client's key from `static_dh` (a listener's cache).
    pub(crate) fn read_hello_with(
        &mut self,
        msg: &[u8],
        policy: &ServerPolicy,
        static_dh: impl FnOnce(&PublicKey) -> Result<sodium::Secret<32>>,
    ) -> Result<Hello> {
        if self.remote_ephemeral.is_some() {
            return Err(Error::new(ErrorKind::InvalidArgument, "the hello was already read"));
        }
        if msg.len() < HELLO_FIXED_LEN || msg.len() > MAX_MESSAGE_LEN {
            return Err(malformed(&format!(
                "hello of {} bytes (expected {HELLO_FIXED_LEN} to {MAX_MESSAGE_LEN})",
                msg.len()
            )));
        }
        let re: [u8; KEY_LEN] = msg[..KEY_LEN].try_into().map_err(|_| malformed("hello"))?;
        self.remote_ephemeral = Some(re);
        self.state.mix_hash(&re);
        let es = sodium::x25519(self.local.secret_bytes(), &re)
            .map_err(|_| malformed("the client's ephemeral key is a low-order point"))?;
        self.state.mix_key(es.expose());
        let static_end = KEY_LEN + KEY_LEN + TAG_LEN;
        let rs = self.state.decrypt_and_hash(&msg[KEY_LEN..static_end]).map_err(|_| {
            Error::new(
                ErrorKind::ServerKeyMismatch,
                "a client's hello does not decrypt: it pinned another server key or named another endpoint",
            )
        })?;
        let rs = PublicKey::from_slice(&rs)?;
        let ss = static_dh(&rs).map_err(|_| malformed("the client's static key is a low-order point"))?;
        self.state.mix_key(ss.expose());
        let payload = self
            .state
            .decrypt_and_hash(&msg[static_end..])
            .map_err(|_| malformed("the hello's payload failed authentication"))?;
        self.remote_static = Some(rs);
        if !policy.allowed.allows(&rs) {
            return Err(Error::new(
                ErrorKind::HandshakeRejected,
                format!("client key {} (fingerprint {}) is not on the allow-list", rs, rs.fingerprint()),
            ));
        }
        let offer = ClientOffer::decode(&payload)?;
        let choice = negotiate(&offer, policy)?;
        self.offer = Some(offer.clone());
        Ok(Hello { client: rs, offer, choice })
    }

    /// Writes Noise message 2 (`<- e, ee, se`) carrying `choice` and finishes the
    /// handshake.
    pub fn write_reply(mut self, choice: &ServerChoice) -> Result<(Vec<u8>, Session)> {
        let (Some(re), Some(rs), Some(offer)) = (self.remote_ephemeral, self.remote_static, self.offer.take()) else {
            return Err(Error::new(ErrorKind::InvalidArgument, "read an accepted hello before writing the reply"));
        };
        let mut out = Vec::with_capacity(REPLY_FIXED_LEN + 48);
        let e_pub = *self.ephemeral.public().as_bytes();
        out.extend_from_slice(&e_pub);
        self.state.mix_hash(&e_pub);
        self.state.mix_key(sodium::x25519(self.ephemeral.secret_bytes(), &re)?.expose());
        self.state.mix_key(sodium::x25519(self.ephemeral.secret_bytes(), rs.as_bytes())?.expose());
        self.state.encrypt_and_hash(&choice.encode(), &mut out);
        let (to_server, to_client) = self.state.split();
        let session = Session {
            send: SendCipher::new(choice.cipher, to_client),
            recv: RecvCipher::new(choice.cipher, to_server),
            handshake_hash: self.state.handshake_hash(),
            peer: rs,
            offer,
            choice: choice.clone(),
        };
        Ok((out, session))
    }
}
