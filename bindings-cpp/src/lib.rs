//! C++17 bindings of shmsock through the `cxx` bridge.
//!
//! The public C++ API is `include/shmsock.hpp` (namespace `shmsock`; one header
//! per concept under `include/shmsock/`); it holds
//! the boxes declared here through opaque pointers and is implemented in
//! `src/*.cpp` (one file per concept, sharing `src/internal.hpp`), which `build.rs` compiles into this crate's static
//! library together with the code cxx generates. Nothing of cxx shows in the
//! public header.
//!
//! Rules of this bridge (see `errors.rs`): every function runs inside a panic
//! boundary and returns `Result`, so cxx turns a failure into a C++ exception
//! and no panic reaches C++; the code of the error travels beside it. The C++
//! callbacks are called through trampolines that catch every C++ exception.
//! There is no protocol logic here: every call goes to the core.

#![deny(unsafe_op_in_unsafe_fn)]

mod client;
mod connecting;
mod errors;
mod keys;
mod listener;
mod options;
mod pubsub;
mod reactor;
mod server;
mod stream;

use client::{client_connect, ClientBox};
use connecting::{connect_start, subscribe_start, ConnectingBox, SubscribingBox};
use errors::{error_name, last_error_code, last_error_needed, testing_panic, testing_raise, version};
use keys::{
    keypair_clone, keypair_from_secret, keypair_generate, keypair_load, public_key_fingerprint, public_key_from_text,
    public_key_to_text, KeypairBox,
};
use listener::{listener_bind, ListenerBox};
use options::{options_clone, options_new, OptionsBox};
use pubsub::{publisher_bind, subscriber_connect, topic_options_default, PublisherBox, SubscriberBox};
use reactor::{reactor_new, ReactorBox};
use server::{connection_clone, server_start, ConnectionBox, ConnectionList, ServerBox};
use stream::{stream_connect, StreamBox};

#[cxx::bridge(namespace = "shmsock::bridge")]
mod ffi {
    /// Message and byte counts of a stream.
    struct StatsData {
        messages_sent: u64,
        bytes_sent: u64,
        messages_received: u64,
        bytes_received: u64,
    }

    /// The peer process, per the kernel.
    struct CredentialsData {
        pid: i32,
        uid: u32,
        gid: u32,
    }

    /// The shape and policy of a topic (see the C++ `TopicOptions`).
    #[derive(Clone, Copy)]
    struct TopicOptionsData {
        slots: u32,
        max_message_size: u32,
        /// True: latest (overwrite); false: reliable with `reliable_timeout_ns`.
        latest: bool,
        reliable_timeout_ns: i64,
        /// -1: rotate only on departures.
        rekey_interval_ns: i64,
        max_subscribers: usize,
    }

    /// A subscriber as its publisher sees it.
    struct SubscriberInfoData {
        id: u64,
        public_key: [u8; 32],
        credentials: CredentialsData,
        joined_at: u64,
    }

    /// One event of a reactor: kind 1 readable, 2 timer, 3 woken.
    struct EventData {
        kind: u8,
        token: u64,
    }

    /// Where a received topic message went.
    struct DeliveryData {
        len: usize,
        sequence: u64,
        lost: u64,
    }

    extern "Rust" {
        // ------------------------------------------------------------ errors
        fn last_error_code() -> u32;
        fn last_error_needed() -> usize;
        fn error_name(code: u32) -> Result<String>;
        fn testing_raise(code: u32, message: &[u8]) -> Result<()>;
        fn testing_panic(message: &[u8]) -> Result<()>;
        fn version() -> Result<String>;

        // -------------------------------------------------------------- keys
        type KeypairBox;
        fn keypair_generate() -> Result<Box<KeypairBox>>;
        fn keypair_load(path: &[u8]) -> Result<Box<KeypairBox>>;
        fn keypair_from_secret(secret: &[u8]) -> Result<Box<KeypairBox>>;
        fn keypair_clone(keypair: &KeypairBox) -> Result<Box<KeypairBox>>;
        fn save(self: &KeypairBox, path: &[u8]) -> Result<()>;
        fn public_key(self: &KeypairBox, out: &mut [u8]) -> Result<()>;
        fn public_key_to_text(key: &[u8]) -> Result<String>;
        fn public_key_from_text(text: &[u8], out: &mut [u8]) -> Result<()>;
        fn public_key_fingerprint(key: &[u8]) -> Result<String>;

        // ----------------------------------------------------------- options
        type OptionsBox;
        fn options_new() -> Result<Box<OptionsBox>>;
        fn options_clone(options: &OptionsBox) -> Result<Box<OptionsBox>>;
        fn set_keypair(self: &mut OptionsBox, keypair: &KeypairBox) -> Result<()>;
        fn set_server_key(self: &mut OptionsBox, key: &[u8]) -> Result<()>;
        fn set_allowed_clients(self: &mut OptionsBox, keys: &[u8]) -> Result<()>;
        fn set_allow_any_client(self: &mut OptionsBox) -> Result<()>;
        fn set_allowed_uids(self: &mut OptionsBox, uids: &[u32]) -> Result<()>;
        fn set_allow_any_uid(self: &mut OptionsBox) -> Result<()>;
        fn set_ring_size(self: &mut OptionsBox, bytes: u32) -> Result<()>;
        fn set_max_message_size(self: &mut OptionsBox, bytes: u32) -> Result<()>;
        fn set_send_timeout(self: &mut OptionsBox, ns: i64) -> Result<()>;
        fn set_recv_timeout(self: &mut OptionsBox, ns: i64) -> Result<()>;
        fn set_handshake_timeout(self: &mut OptionsBox, ns: i64) -> Result<()>;
        fn set_connect_wait(self: &mut OptionsBox, ns: i64) -> Result<()>;
        fn set_spin(self: &mut OptionsBox, ns: i64) -> Result<()>;
        fn set_backend(self: &mut OptionsBox, backend: u8) -> Result<()>;
        fn set_require_chacha(self: &mut OptionsBox, require: bool) -> Result<()>;
        fn set_max_reassembly_bytes(self: &mut OptionsBox, bytes: usize) -> Result<()>;
        fn set_max_connections(self: &mut OptionsBox, n: usize) -> Result<()>;
        fn set_max_connections_per_uid(self: &mut OptionsBox, n: usize) -> Result<()>;
        fn set_max_pending_handshakes(self: &mut OptionsBox, overall: usize, per_uid: usize) -> Result<()>;
        fn set_max_queued_bytes(self: &mut OptionsBox, bytes: usize) -> Result<()>;
        fn set_dispatch_threads(self: &mut OptionsBox, n: usize) -> Result<()>;
        fn validate(self: &OptionsBox) -> Result<()>;

        // ------------------------------------------------------------ stream
        type StreamBox;
        fn stream_connect(name: &[u8], options: &OptionsBox) -> Result<Box<StreamBox>>;
        fn send(self: &StreamBox, data: &[u8], timeout_ns: i64) -> Result<()>;
        fn try_send(self: &StreamBox, data: &[u8]) -> Result<bool>;
        fn send_resumable(self: &StreamBox, data: &[u8]) -> Result<i64>;
        fn recv(self: &StreamBox, timeout_ns: i64) -> Result<Vec<u8>>;
        fn try_recv(self: &StreamBox, out: &mut Vec<u8>) -> Result<bool>;
        fn recv_into(self: &StreamBox, buf: &mut [u8], timeout_ns: i64) -> Result<usize>;
        fn try_recv_into(self: &StreamBox, buf: &mut [u8]) -> Result<i64>;
        fn hand_over(self: &StreamBox) -> Result<bool>;
        fn close(self: &StreamBox) -> Result<()>;
        fn is_closed(self: &StreamBox) -> Result<bool>;
        fn peer_public_key(self: &StreamBox, out: &mut [u8]) -> Result<()>;
        fn local_public_key(self: &StreamBox, out: &mut [u8]) -> Result<()>;
        fn peer_credentials(self: &StreamBox) -> Result<CredentialsData>;
        fn stats(self: &StreamBox) -> Result<StatsData>;
        fn cipher(self: &StreamBox) -> Result<String>;
        fn backend(self: &StreamBox) -> Result<u8>;
        fn ring_size(self: &StreamBox) -> Result<u32>;
        fn peer_max_message_size(self: &StreamBox) -> Result<u32>;
        fn endpoint(self: &StreamBox) -> Result<String>;
        fn is_server_side(self: &StreamBox) -> Result<bool>;
        fn fd(self: &StreamBox) -> Result<i32>;

        // -------------------------------------------------------- connecting
        type ConnectingBox;
        fn connect_start(name: &[u8], options: &OptionsBox) -> Result<Box<ConnectingBox>>;
        fn advance(self: &ConnectingBox) -> Result<bool>;
        fn take_stream(self: &ConnectingBox) -> Result<Box<StreamBox>>;
        fn fd(self: &ConnectingBox) -> Result<i32>;
        fn time_left_ns(self: &ConnectingBox) -> Result<i64>;

        type SubscribingBox;
        fn subscribe_start(name: &[u8], options: &OptionsBox) -> Result<Box<SubscribingBox>>;
        fn advance(self: &SubscribingBox) -> Result<bool>;
        fn take_subscriber(self: &SubscribingBox) -> Result<Box<SubscriberBox>>;
        fn fd(self: &SubscribingBox) -> Result<i32>;
        fn time_left_ns(self: &SubscribingBox) -> Result<i64>;

        // ---------------------------------------------------------- listener
        type ListenerBox;
        fn listener_bind(name: &[u8], options: &OptionsBox) -> Result<Box<ListenerBox>>;
        fn accept(self: &ListenerBox, timeout_ns: i64) -> Result<Box<StreamBox>>;
        fn close(self: &ListenerBox) -> Result<()>;
        fn is_closed(self: &ListenerBox) -> Result<bool>;
        fn name(self: &ListenerBox) -> Result<String>;
        fn public_key(self: &ListenerBox, out: &mut [u8]) -> Result<()>;
        fn fd(self: &ListenerBox) -> Result<i32>;
        fn rejected_count(self: &ListenerBox) -> Result<u64>;
        fn set_max_connections(self: &ListenerBox, max: usize, max_per_uid: usize) -> Result<()>;
        fn last_rejection_code(self: &ListenerBox) -> Result<u32>;
        fn last_rejection_message(self: &ListenerBox) -> Result<String>;

        // ------------------------------------------------------------ server
        type ServerBox;
        type ConnectionBox;
        type ConnectionList;
        fn server_start(
            name: &[u8],
            options: &OptionsBox,
            callbacks: UniquePtr<ServerCallbacks>,
        ) -> Result<Box<ServerBox>>;
        fn close(self: &ServerBox) -> Result<()>;
        fn is_closed(self: &ServerBox) -> Result<bool>;
        fn name(self: &ServerBox) -> Result<String>;
        fn public_key(self: &ServerBox, out: &mut [u8]) -> Result<()>;
        fn connections(self: &ServerBox) -> Result<Box<ConnectionList>>;
        fn len(self: &ConnectionList) -> Result<usize>;
        fn get(self: &ConnectionList, index: usize) -> Result<Box<ConnectionBox>>;
        fn connection_clone(connection: &ConnectionBox) -> Result<Box<ConnectionBox>>;
        fn id(self: &ConnectionBox) -> Result<u64>;
        fn send(self: &ConnectionBox, data: &[u8], timeout_ns: i64) -> Result<()>;
        fn try_send(self: &ConnectionBox, data: &[u8]) -> Result<bool>;
        fn close(self: &ConnectionBox) -> Result<()>;
        fn is_closed(self: &ConnectionBox) -> Result<bool>;
        fn peer_public_key(self: &ConnectionBox, out: &mut [u8]) -> Result<()>;
        fn local_public_key(self: &ConnectionBox, out: &mut [u8]) -> Result<()>;
        fn peer_credentials(self: &ConnectionBox) -> Result<CredentialsData>;
        fn stats(self: &ConnectionBox) -> Result<StatsData>;
        fn cipher(self: &ConnectionBox) -> Result<String>;

        // ------------------------------------------------------------ client
        type ClientBox;
        fn client_connect(
            name: &[u8],
            options: &OptionsBox,
            callbacks: UniquePtr<ClientCallbacks>,
        ) -> Result<Box<ClientBox>>;
        fn write(self: &ClientBox, data: &[u8], timeout_ns: i64) -> Result<()>;
        fn try_write(self: &ClientBox, data: &[u8]) -> Result<bool>;
        fn close(self: &ClientBox) -> Result<()>;
        fn is_closed(self: &ClientBox) -> Result<bool>;
        fn server_public_key(self: &ClientBox, out: &mut [u8]) -> Result<()>;
        fn stats(self: &ClientBox) -> Result<StatsData>;

        // ----------------------------------------------------------- pub/sub
        type PublisherBox;
        type SubscriberBox;
        fn topic_options_default() -> Result<TopicOptionsData>;
        fn publisher_bind(name: &[u8], options: &OptionsBox, topic: &TopicOptionsData) -> Result<Box<PublisherBox>>;
        fn publish(self: &PublisherBox, data: &[u8]) -> Result<()>;
        fn try_publish(self: &PublisherBox, data: &[u8]) -> Result<bool>;
        fn publish_deadline_ns(self: &PublisherBox) -> Result<i64>;
        fn fd(self: &PublisherBox) -> Result<i32>;
        fn wait_for_subscribers(self: &PublisherBox, n: usize, timeout_ns: i64) -> Result<()>;
        fn try_wait_for_subscribers(self: &PublisherBox, n: usize) -> Result<bool>;
        fn membership_fd(self: &PublisherBox) -> Result<i32>;
        fn subscriber_count(self: &PublisherBox) -> Result<usize>;
        fn subscribers(self: &PublisherBox) -> Result<Vec<SubscriberInfoData>>;
        fn remove(self: &PublisherBox, id: u64) -> Result<()>;
        fn rotate_key(self: &PublisherBox) -> Result<()>;
        fn epoch(self: &PublisherBox) -> Result<u64>;
        fn sequence(self: &PublisherBox) -> Result<u64>;
        fn dropped_count(self: &PublisherBox) -> Result<u64>;
        fn topic(self: &PublisherBox) -> Result<String>;
        fn public_key(self: &PublisherBox, out: &mut [u8]) -> Result<()>;
        fn cipher(self: &PublisherBox) -> Result<String>;
        fn max_message_size(self: &PublisherBox) -> Result<u32>;
        fn close(self: &PublisherBox) -> Result<()>;
        fn is_closed(self: &PublisherBox) -> Result<bool>;

        fn subscriber_connect(name: &[u8], options: &OptionsBox) -> Result<Box<SubscriberBox>>;
        fn recv(self: &SubscriberBox, out: &mut Vec<u8>, timeout_ns: i64) -> Result<DeliveryData>;
        fn try_recv(self: &SubscriberBox, out: &mut Vec<u8>, delivery: &mut DeliveryData) -> Result<bool>;
        fn recv_into(self: &SubscriberBox, buf: &mut [u8], timeout_ns: i64) -> Result<DeliveryData>;
        fn try_recv_into(self: &SubscriberBox, buf: &mut [u8], delivery: &mut DeliveryData) -> Result<bool>;
        fn lost(self: &SubscriberBox) -> Result<u64>;
        fn received(self: &SubscriberBox) -> Result<u64>;
        fn position(self: &SubscriberBox) -> Result<u64>;
        fn epoch(self: &SubscriberBox) -> Result<u64>;
        fn topic(self: &SubscriberBox) -> Result<String>;
        fn publisher_public_key(self: &SubscriberBox, out: &mut [u8]) -> Result<()>;
        fn local_public_key(self: &SubscriberBox, out: &mut [u8]) -> Result<()>;
        fn publisher_credentials(self: &SubscriberBox) -> Result<CredentialsData>;
        fn cipher(self: &SubscriberBox) -> Result<String>;
        fn max_message_size(self: &SubscriberBox) -> Result<u32>;
        fn fd(self: &SubscriberBox) -> Result<i32>;
        fn close(self: &SubscriberBox) -> Result<()>;
        fn is_closed(self: &SubscriberBox) -> Result<bool>;

        // ----------------------------------------------------------- reactor
        type ReactorBox;
        fn reactor_new(spin_ns: i64) -> Result<Box<ReactorBox>>;
        fn add_stream(self: &ReactorBox, stream: &StreamBox, token: u64) -> Result<()>;
        fn remove_stream(self: &ReactorBox, stream: &StreamBox) -> Result<()>;
        fn add_listener(self: &ReactorBox, listener: &ListenerBox, token: u64) -> Result<()>;
        fn remove_listener(self: &ReactorBox, listener: &ListenerBox) -> Result<()>;
        fn add_subscriber(self: &ReactorBox, subscriber: &SubscriberBox, token: u64) -> Result<()>;
        fn remove_subscriber(self: &ReactorBox, subscriber: &SubscriberBox) -> Result<()>;
        fn add_fd(self: &ReactorBox, fd: i32, token: u64) -> Result<()>;
        fn remove_fd(self: &ReactorBox, fd: i32) -> Result<()>;
        fn add_timer(self: &ReactorBox, after_ns: i64, token: u64) -> Result<u64>;
        fn cancel_timer(self: &ReactorBox, id: u64) -> Result<()>;
        fn next_timeout(self: &ReactorBox) -> Result<i64>;
        fn note_activity(self: &ReactorBox) -> Result<()>;
        fn poll(self: &ReactorBox, events: &mut Vec<EventData>, timeout_ns: i64) -> Result<()>;
        fn wake(self: &ReactorBox) -> Result<()>;
        fn fd(self: &ReactorBox) -> Result<i32>;
    }

    // The trampolines (src/server.cpp, src/client.cpp) catch every C++ exception: none may
    // unwind into Rust.
    unsafe extern "C++" {
        include!("shmsock-cxx/src/callbacks.h");

        type ServerCallbacks;
        type ClientCallbacks;

        fn server_on_connect(callbacks: &ServerCallbacks, connection: &ConnectionBox);
        fn server_on_data(callbacks: &ServerCallbacks, connection: &ConnectionBox, data: &[u8]);
        fn server_on_error(callbacks: &ServerCallbacks, connection: &ConnectionBox, code: u32, message: &str);
        fn server_on_error_unbound(callbacks: &ServerCallbacks, code: u32, message: &str);
        fn server_on_close(
            callbacks: &ServerCallbacks,
            connection: &ConnectionBox,
            has_reason: bool,
            code: u32,
            message: &str,
        );

        fn client_on_data(callbacks: &ClientCallbacks, data: &[u8]);
        fn client_on_error(callbacks: &ClientCallbacks, code: u32, message: &str);
        fn client_on_close(callbacks: &ClientCallbacks, has_reason: bool, code: u32, message: &str);
    }
}
