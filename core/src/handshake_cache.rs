//! Work a listener does ahead of, or once for many, handshakes: a responder
//! prepared before the next HELLO arrives (its ephemeral keypair and prologue
//! hash), and a bounded cache of static-static X25519 results per client key.
//!
//! The spare responder takes the ephemeral key generation off the connect path:
//! it is made after a REPLY is sent, while the client computes its side. Each
//! spare is used once. A spare segment does the same for the segment's
//! creation (memfd_create, sealing, mmap; it reserved the whole segment then,
//! about 50 µs, and reserves its header page now): one per listener, of the backend and ring size
//! of the last connection, memfd only (a named spare would be a visible file in
//! /dev/shm). It costs one descriptor and one idle segment's memory per
//! listener; it was never shared with anyone before it is handed out.
//!
//! The static-static result (`ss` in Noise IK) is the same for every handshake
//! between the listener's keypair and one client key, so it is computed once per
//! client key and kept, keyed by the full 32-byte public key (the listener holds
//! exactly one keypair, the other half of the key). It is as secret as the
//! static key itself, which this process holds anyway, and is zeroed when
//! evicted or dropped. At most [`CAPACITY`] entries, oldest out first. A cached
//! entry makes a handshake with a known client key a few tens of µs faster,
//! which a process that can reach the endpoint (the same user: the runtime
//! directory is private) could time to learn whether a key it names connected
//! recently; that process could read this one's memory anyway.
//!
//! Clients keep the same result for the same reason: `ss` of a connect is the
//! X25519 of the client's static secret and the pinned server key, the same
//! for every connection between those two keys. [`client_static_dh`] keeps it
//! per (client key, server key) pair, process-wide, bounded and zeroed like
//! the listener's. A process that connects again and again to one server
//! (a client reconnecting, a pool, the connect benchmark) does one X25519 less
//! per connect.
//!
//! Such a process also prepares its next connect's ephemeral keypair and its
//! `es` with the server key while a connect waits for the server's REPLY (the
//! client is idle then, for the server's three X25519): [`prepare_client_spare`]
//! and [`take_client_spare`]. One spare per process, for the last server key,
//! used at most once; its secrets are zeroed when dropped.
//!
//! Everything made ahead remembers the process that made it, and only that
//! process uses it (see [`Prepared`], [`Origin`]): a child of `fork()` inherits its
//! parent's memory, so parent and child would otherwise hand the same
//! ephemeral key to their next peers, and the same spare segment (one shared
//! memory) to two different connections.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::error::Result;
use crate::handshake::{Backend, Responder};
use crate::keys::{Keypair, PublicKey};
use crate::platform::Origin;
use crate::segment::Segment;
use crate::sodium::{self, Secret};

/// Client keys whose static-static result is kept.
pub const CAPACITY: usize = 1024;

/// A listener's prepared responder and static-static cache.
#[derive(Default)]
pub(crate) struct HandshakeCache {
    spare: Mutex<Option<Prepared<Responder>>>,
    spare_segment: Mutex<Option<Prepared<Segment>>>,
    static_dh: Mutex<StaticDh<PublicKey>>,
}

/// Something made ahead for a handshake, and the process that made it.
struct Prepared<T> {
    origin: Origin,
    value: T,
}

impl<T> Prepared<T> {
    fn new(value: T) -> Prepared<T> {
        Prepared { origin: Origin::here(), value }
    }

    /// Whether this process made it.
    fn made_here(&self) -> bool {
        !self.origin.forked()
    }

    /// What `slot` holds, taken, if this process made it and it `fits`. What
    /// another process made (this one is its child by `fork()`) is dropped
    /// instead: that process may use it too.
    fn take(slot: &mut Option<Prepared<T>>, fits: impl FnOnce(&T) -> bool) -> Option<T> {
        let prepared = slot.take()?;
        if !prepared.made_here() {
            return None;
        }
        if fits(&prepared.value) {
            return Some(prepared.value);
        }
        *slot = Some(prepared);
        None
    }
}

/// Static-static results by key (one peer key, or a pair of keys), at most
/// [`CAPACITY`], oldest out first.
struct StaticDh<K> {
    results: HashMap<K, Secret<32>>,
    /// Keys in insertion order, for eviction.
    order: VecDeque<K>,
}

impl<K> Default for StaticDh<K> {
    fn default() -> StaticDh<K> {
        StaticDh { results: HashMap::new(), order: VecDeque::new() }
    }
}

impl<K: std::hash::Hash + Eq + Copy> StaticDh<K> {
    /// The result for `key` from `cache`, or `compute`d (outside the lock) and
    /// kept. An error is returned and not kept.
    fn get_or_compute(
        cache: &Mutex<StaticDh<K>>,
        key: K,
        compute: impl FnOnce() -> Result<Secret<32>>,
    ) -> Result<Secret<32>> {
        if let Some(result) = cache.lock().results.get(&key) {
            return Ok(result.clone());
        }
        let result = compute()?;
        let mut cache = cache.lock();
        if cache.results.insert(key, result.clone()).is_none() {
            cache.order.push_back(key);
            if cache.order.len() > CAPACITY {
                if let Some(oldest) = cache.order.pop_front() {
                    cache.results.remove(&oldest);
                }
            }
        }
        Ok(result)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.results.len()
    }
}

/// The clients' cache, by (client key, server key).
static CLIENT_STATIC_DH: std::sync::LazyLock<Mutex<StaticDh<(PublicKey, PublicKey)>>> =
    std::sync::LazyLock::new(Mutex::default);

/// X25519 of the client's static secret `local` and the pinned server key
/// `server` (`ss` of Noise IK), from the process-wide cache or computed (and
/// kept). A low-order server key is an error and not kept.
pub(crate) fn client_static_dh(local: &Keypair, server: &PublicKey) -> Result<Secret<32>> {
    StaticDh::get_or_compute(&CLIENT_STATIC_DH, (*local.public(), *server), || {
        sodium::x25519(local.secret_bytes(), server.as_bytes())
    })
}

/// A client's ephemeral keypair and its `es` with `server`, made ahead.
struct ClientSpare {
    server: PublicKey,
    ephemeral: Keypair,
    es: Secret<32>,
}

static CLIENT_SPARE: Mutex<Option<Prepared<ClientSpare>>> = Mutex::new(None);

/// The prepared ephemeral keypair and `es` for `server`, if there is one (it
/// is handed out once).
pub(crate) fn take_client_spare(server: &PublicKey) -> Option<(Keypair, Secret<32>)> {
    Prepared::take(&mut CLIENT_SPARE.lock(), |s| s.server == *server).map(|s| (s.ephemeral, s.es))
}

/// Prepares the next connect's ephemeral keypair and `es` with `server`
/// (unless one is ready for it), replacing a spare for another server.
pub(crate) fn prepare_client_spare(server: &PublicKey) {
    if CLIENT_SPARE.lock().as_ref().is_some_and(|s| s.made_here() && s.value.server == *server) {
        return;
    }
    // Made outside the lock; a low-order key fails here and later, not silently.
    let ephemeral = Keypair::generate();
    if let Ok(es) = sodium::x25519(ephemeral.secret_bytes(), server.as_bytes()) {
        *CLIENT_SPARE.lock() = Some(Prepared::new(ClientSpare { server: *server, ephemeral, es }));
    }
}

impl HandshakeCache {
    /// The prepared responder if there is one, else a new one.
    pub(crate) fn responder(&self, local: &Keypair, endpoint: &str) -> Result<Responder> {
        match Prepared::take(&mut self.spare.lock(), |_| true) {
            Some(responder) => Ok(responder),
            None => Responder::new(local, endpoint),
        }
    }

    /// Prepares the responder of the next handshake, if none is ready.
    pub(crate) fn prepare(&self, local: &Keypair, endpoint: &str) {
        if self.spare.lock().as_ref().is_some_and(Prepared::made_here) {
            return;
        }
        // Made outside the lock: a concurrent `responder` call makes its own.
        if let Ok(responder) = Responder::new(local, endpoint) {
            *self.spare.lock() = Some(Prepared::new(responder));
        }
    }

    /// A new segment for `backend` and `ring_size`: the spare if it fits,
    /// else created now.
    pub(crate) fn segment(&self, backend: Backend, ring_size: u32) -> Result<Segment> {
        let fits = |s: &Segment| s.backend() == backend && s.ring_size() == ring_size;
        let spare = Prepared::take(&mut self.spare_segment.lock(), fits);
        match spare {
            Some(segment) => Ok(segment),
            None => Segment::create(backend, ring_size),
        }
    }

    /// Prepares the next handshake's segment, like the last one (memfd
    /// only), if no spare is ready. A failure (out of memory or descriptors)
    /// only means the next handshake creates its own, and reports it then.
    pub(crate) fn prepare_segment(&self, backend: Backend, ring_size: u32) {
        if backend != Backend::Memfd || self.spare_segment.lock().as_ref().is_some_and(Prepared::made_here) {
            return;
        }
        if let Ok(segment) = Segment::create(backend, ring_size) {
            *self.spare_segment.lock() = Some(Prepared::new(segment));
        }
    }

    /// X25519 of `local`'s secret and the client's static key `peer`, from the
    /// cache or computed (and kept). A low-order key is an error and not kept.
    pub(crate) fn static_dh(&self, local: &Keypair, peer: &PublicKey) -> Result<Secret<32>> {
        StaticDh::get_or_compute(&self.static_dh, *peer, || sodium::x25519(local.secret_bytes(), peer.as_bytes()))
    }

    /// Client keys cached now (a test hook).
    #[cfg(test)]
    fn cached(&self) -> usize {
        self.static_dh.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn static_dh_matches_and_stays_bounded() {
        let server = Keypair::generate();
        let cache = HandshakeCache::default();
        let client = Keypair::generate();
        let direct = sodium::x25519(server.secret_bytes(), client.public().as_bytes()).unwrap();
        assert_eq!(cache.static_dh(&server, client.public()).unwrap().expose(), direct.expose());
        assert_eq!(cache.static_dh(&server, client.public()).unwrap().expose(), direct.expose());
        assert_eq!(cache.cached(), 1);
        for _ in 0..CAPACITY + 5 {
            cache.static_dh(&server, Keypair::generate().public()).unwrap();
        }
        assert_eq!(cache.cached(), CAPACITY);
        // The first key was evicted; computing it again still agrees.
        assert_eq!(cache.static_dh(&server, client.public()).unwrap().expose(), direct.expose());
        // A low-order point is refused and not kept.
        let zero = PublicKey::from_slice(&[0u8; 32]).unwrap();
        assert!(cache.static_dh(&server, &zero).is_err());
        assert_eq!(cache.cached(), CAPACITY);
    }

    #[test]
    fn client_static_dh_matches_per_key_pair() {
        let (client, other_client) = (Keypair::generate(), Keypair::generate());
        let (server, other_server) = (Keypair::generate(), Keypair::generate());
        for (c, s) in [(&client, &server), (&client, &other_server), (&other_client, &server)] {
            let direct = sodium::x25519(c.secret_bytes(), s.public().as_bytes()).unwrap();
            // Computed, then from the cache: the same either way, and per pair
            // (a result kept for one pair is never used for another).
            assert_eq!(client_static_dh(c, s.public()).unwrap().expose(), direct.expose());
            assert_eq!(client_static_dh(c, s.public()).unwrap().expose(), direct.expose());
        }
        let zero = PublicKey::from_slice(&[0u8; 32]).unwrap();
        assert!(client_static_dh(&client, &zero).is_err(), "a low-order server key is refused");
        assert!(CLIENT_STATIC_DH.lock().len() <= CAPACITY);
    }

    #[test]
    fn a_client_spare_is_for_its_server_and_used_once() {
        let (server, other) = (Keypair::generate(), Keypair::generate());
        prepare_client_spare(server.public());
        assert!(take_client_spare(other.public()).is_none(), "a spare is only for its server key");
        let (ephemeral, es) = take_client_spare(server.public()).expect("the spare for this server");
        let direct = sodium::x25519(ephemeral.secret_bytes(), server.public().as_bytes()).unwrap();
        assert_eq!(es.expose(), direct.expose());
        assert!(take_client_spare(server.public()).is_none(), "a spare is handed out once");
    }

    #[test]
    fn a_spare_segment_fits_its_request_and_is_used_once() {
        let cache = HandshakeCache::default();
        cache.prepare_segment(Backend::Named, 4096);
        assert!(cache.spare_segment.lock().is_none(), "no named spare");
        cache.prepare_segment(Backend::Memfd, 4096);
        let spare_fd = cache.spare_segment.lock().as_ref().and_then(|s| s.value.memfd().map(|fd| fd.as_raw_fd()));
        assert!(spare_fd.is_some());
        let other = cache.segment(Backend::Memfd, 8192).unwrap();
        assert_eq!(other.ring_size(), 8192, "a spare of another size is not handed out");
        assert!(cache.spare_segment.lock().is_some());
        let first = cache.segment(Backend::Memfd, 4096).unwrap();
        assert_eq!(first.memfd().map(|fd| fd.as_raw_fd()), spare_fd, "the spare was handed out");
        assert!(cache.spare_segment.lock().is_none(), "and is gone");
        let second = cache.segment(Backend::Memfd, 4096).unwrap();
        assert_ne!(second.memfd().map(|fd| fd.as_raw_fd()), spare_fd);
    }

    #[test]
    fn each_spare_responder_is_used_once() {
        let server = Keypair::generate();
        let cache = HandshakeCache::default();
        cache.prepare(&server, "spare");
        assert!(cache.spare.lock().is_some());
        let _first = cache.responder(&server, "spare").unwrap();
        assert!(cache.spare.lock().is_none(), "the spare was handed out and is gone");
        let _second = cache.responder(&server, "spare").unwrap();
    }

    /// What a process finds made ahead by another (its parent, before
    /// `fork()`, as the child inherits the parent's memory).
    fn made_elsewhere<T>(value: T) -> Option<Prepared<T>> {
        Some(Prepared { origin: Origin::elsewhere(), value })
    }

    #[test]
    fn what_another_process_made_ahead_is_dropped_not_used() {
        let server = Keypair::generate();
        let cache = HandshakeCache::default();
        // The spare segment: another process may hand the same memory out.
        // (Told apart by inode: the dropped one's descriptor number is reused.)
        let inode = |s: &Segment| s.memfd().map(|fd| rustix::fs::fstat(fd).unwrap().st_ino);
        let inherited = Segment::create(Backend::Memfd, 4096).unwrap();
        let inherited_inode = inode(&inherited);
        *cache.spare_segment.lock() = made_elsewhere(inherited);
        let fresh = cache.segment(Backend::Memfd, 4096).unwrap();
        assert!(inherited_inode.is_some());
        assert_ne!(inode(&fresh), inherited_inode, "a segment made elsewhere was used");
        assert!(cache.spare_segment.lock().is_none(), "and it was dropped");
        cache.prepare_segment(Backend::Memfd, 4096);
        assert!(cache.spare_segment.lock().as_ref().is_some_and(Prepared::made_here));
        // The spare responder: its ephemeral key may be used there too.
        *cache.spare.lock() = made_elsewhere(Responder::new(&server, "forked").unwrap());
        cache.prepare(&server, "forked");
        assert!(cache.spare.lock().as_ref().is_some_and(Prepared::made_here), "not replaced");
        *cache.spare.lock() = made_elsewhere(Responder::new(&server, "forked").unwrap());
        let _own = cache.responder(&server, "forked").unwrap();
        assert!(cache.spare.lock().is_none(), "a responder made elsewhere was kept");
        // The client's spare ephemeral key and `es`.
        let elsewhere = Keypair::generate();
        let es = sodium::x25519(elsewhere.secret_bytes(), server.public().as_bytes()).unwrap();
        let spare = ClientSpare { server: *server.public(), ephemeral: elsewhere, es };
        let mut slot = made_elsewhere(spare);
        assert!(Prepared::take(&mut slot, |s| s.server == *server.public()).is_none());
        assert!(slot.is_none(), "a client spare made elsewhere was kept");
    }
}
