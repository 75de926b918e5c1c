//! The one reactor of the process, and the way results get back to JavaScript.
//!
//! A single native thread (started on first use) waits with the core's
//! [`Poller`] (an epoll set) on the pollable fds of the streams and listeners
//! that have something pending: a receive, an accept, a flowing connection of a
//! Server or Client. When one is readable it calls `try_recv` / accepts, and
//! posts the results to JavaScript in batches through ONE thread-safe function
//! (`dispatch`), which the JavaScript layer turns into resolved promises and
//! emitted events. The reactor also runs the deadlines of pending receives and
//! accepts (timeouts).
//!
//! Nothing here keeps Node's event loop alive by itself: the thread-safe
//! function is created weak, and the JavaScript layer refs it while it has
//! pending operations or open Server/Client objects (`setActive`).

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use shmsock::platform::{Poller, WAKE_TOKEN};
use shmsock::Error as CoreError;

use crate::errors::code_of;
use crate::listener::ListenerShared;
use crate::stream::{NativeStream, StreamShared};

/// Locks a mutex, ignoring poisoning (no lock here is held across user code).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kinds of events, as the first element of each event array in JavaScript.
pub(crate) mod kind {
    /// `[0, op, Buffer]`: a receive completed.
    pub const RECV: u32 = 0;
    /// `[1, op]`: a send or close completed.
    pub const DONE: u32 = 1;
    /// `[2, op, null, code, message]`: an operation failed.
    pub const FAILED: u32 = 2;
    /// `[3, op, NativeStream]`: an accept or connect completed.
    pub const STREAM: u32 = 3;
    /// `[4, streamId, Buffer]`: a message on a flowing stream.
    pub const DATA: u32 = 4;
    /// `[5, streamId, null, code|null, message|null]`: a flowing stream ended
    /// (code null: a clean close by either side).
    pub const END: u32 = 5;
    /// `[6, listenerId, NativeStream]`: a serving listener accepted a client.
    pub const CONNECTION: u32 = 6;
    /// `[7, listenerId, null, code, message]`: a client failed the handshake.
    pub const REJECTED: u32 = 7;
}

/// One result for JavaScript.
pub(crate) enum Event {
    Recv { op: i64, data: Vec<u8> },
    Done { op: i64 },
    Failed { op: i64, error: CoreError },
    Stream { op: i64, stream: Arc<StreamShared> },
    Data { stream: Arc<StreamShared>, data: Vec<u8> },
    End { id: i64, error: Option<CoreError> },
    Connection { listener: i64, stream: Arc<StreamShared> },
    Rejected { listener: i64, error: CoreError },
}

fn error_parts(error: &CoreError) -> (Option<String>, Option<String>) {
    (Some(code_of(error.kind())), Some(error.message().to_string()))
}

impl ToNapiValue for Event {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        // SAFETY: called by napi-rs on the JavaScript thread with its env.
        unsafe {
            match val {
                Event::Recv { op, data } => ToNapiValue::to_napi_value(env, (kind::RECV, op, Buffer::from(data))),
                Event::Done { op } => ToNapiValue::to_napi_value(env, (kind::DONE, op)),
                Event::Failed { op, error } => {
                    let (code, message) = error_parts(&error);
                    ToNapiValue::to_napi_value(env, (kind::FAILED, op, Null, code, message))
                }
                Event::Stream { op, stream } => {
                    ToNapiValue::to_napi_value(env, (kind::STREAM, op, NativeStream::wrap(stream)))
                }
                Event::Data { stream, data } => {
                    ToNapiValue::to_napi_value(env, (kind::DATA, stream.id, Buffer::from(data)))
                }
                Event::End { id, error } => {
                    let (code, message) = error.as_ref().map(error_parts).unwrap_or((None, None));
                    ToNapiValue::to_napi_value(env, (kind::END, id, Null, code, message))
                }
                Event::Connection { listener, stream } => {
                    ToNapiValue::to_napi_value(env, (kind::CONNECTION, listener, NativeStream::wrap(stream)))
                }
                Event::Rejected { listener, error } => {
                    let (code, message) = error_parts(&error);
                    ToNapiValue::to_napi_value(env, (kind::REJECTED, listener, Null, code, message))
                }
            }
        }
    }
}

type Dispatch = ThreadsafeFunction<Vec<Event>, (), Vec<Event>, Status, false, true, 0>;

static DISPATCH: Mutex<Option<Dispatch>> = Mutex::new(None);

/// Registers the JavaScript function that receives every batch of events.
/// Called once by the JavaScript layer when it loads.
#[napi(ts_args_type = "dispatch: (events: Array<Array<unknown>>) => void")]
pub fn init(dispatch: Function<Vec<Event>, ()>) -> Result<()> {
    let tsfn =
        dispatch.build_threadsafe_function::<Vec<Event>>().callee_handled::<false>().weak::<true>().build_callback(
            |ctx: napi::threadsafe_function::ThreadsafeCallContext<Vec<Event>>| {
                // Messages of flowing streams are handed over now: give their
                // credit back so the reactor keeps receiving.
                for event in &ctx.value {
                    if let Event::Data { stream, .. } = event {
                        stream.return_credit();
                    }
                }
                Ok(ctx.value)
            },
        )?;
    *lock(&DISPATCH) = Some(tsfn);
    Ok(())
}

/// Keeps Node's event loop alive (true) or lets it exit (false) while the
/// reactor may still post events. The JavaScript layer calls it when its count
/// of pending operations and open Server/Client objects leaves or reaches 0.
#[napi]
pub fn set_active(env: Env, active: bool) -> Result<()> {
    let guard = lock(&DISPATCH);
    if let Some(tsfn) = guard.as_ref() {
        // SAFETY: on the JavaScript thread, with the env that created the function.
        let status = unsafe {
            if active {
                sys::napi_ref_threadsafe_function(env.raw(), tsfn.raw())
            } else {
                sys::napi_unref_threadsafe_function(env.raw(), tsfn.raw())
            }
        };
        if status != sys::Status::napi_ok {
            return Err(Error::new(Status::from(status), "could not ref/unref the dispatch function"));
        }
    }
    Ok(())
}

/// Sends events to JavaScript (from any thread, never blocking).
pub(crate) fn post(events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    let guard = lock(&DISPATCH);
    if let Some(tsfn) = guard.as_ref() {
        tsfn.call(events, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// Something the reactor serves.
#[derive(Clone)]
pub(crate) enum Entity {
    Stream(Arc<StreamShared>),
    Listener(Arc<ListenerShared>),
}

impl Entity {
    fn id(&self) -> u64 {
        match self {
            Entity::Stream(s) => s.id as u64,
            Entity::Listener(l) => l.id as u64,
        }
    }
    fn service(&self, now: Instant, ready: bool, events: &mut Vec<Event>) {
        match self {
            Entity::Stream(s) => s.service(now, ready, events),
            Entity::Listener(l) => l.service(now, ready, events),
        }
    }
}

/// What an entity wants from the reactor, kept by the entity under its lock.
#[derive(Default)]
pub(crate) struct Interest {
    /// Its fd is in the epoll set.
    watched: bool,
    /// When the reactor must look at it even if its fd is quiet (a deadline,
    /// or polling while a blocking send owns the wake-ups).
    wake_at: Option<Instant>,
    /// It is in the reactor's registry.
    registered: bool,
}

/// How often a stream whose wake-ups belong to a blocking send is polled.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_micros(500);

pub(crate) struct Reactor {
    poller: Poller,
    registry: Mutex<HashMap<u64, (Entity, Option<Instant>)>>,
    kicked: Mutex<Vec<Entity>>,
}

thread_local! {
    static ON_REACTOR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

static REACTOR: OnceLock<std::result::Result<Arc<Reactor>, CoreError>> = OnceLock::new();

/// The reactor, started on first use.
pub(crate) fn reactor() -> std::result::Result<&'static Arc<Reactor>, CoreError> {
    REACTOR
        .get_or_init(|| {
            let reactor = Arc::new(Reactor {
                poller: Poller::new()?,
                registry: Mutex::new(HashMap::new()),
                kicked: Mutex::new(Vec::new()),
            });
            let runner = Arc::clone(&reactor);
            std::thread::Builder::new()
                .name("shmsock-reactor".into())
                .spawn(move || runner.run())
                .map_err(|e| CoreError::io("starting the shmsock reactor thread", e))?;
            Ok(reactor)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether the reactor thread was started (for tests: it is lazy).
#[napi]
pub fn reactor_started() -> bool {
    REACTOR.get().is_some_and(|r| r.is_ok())
}

/// How many streams and listeners the reactor is serving now (for tests).
#[napi]
pub fn reactor_load() -> u32 {
    match REACTOR.get() {
        Some(Ok(r)) => lock(&r.registry).len() as u32,
        _ => 0,
    }
}

impl Reactor {
    /// Updates what `entity` wants: its fd watched or not, and when to look at
    /// it regardless. Called with the entity's lock held.
    pub(crate) fn set_interest(
        &self,
        entity: &Entity,
        fd: BorrowedFd<'_>,
        interest: &mut Interest,
        watch: bool,
        wake_at: Option<Instant>,
    ) {
        let id = entity.id();
        let mut wake_at = wake_at;
        if watch != interest.watched {
            if watch {
                if self.poller.add(fd, id).is_ok() {
                    interest.watched = true;
                } else {
                    // Cannot happen for a live socket; fall back to polling.
                    let poll = Instant::now() + POLL_INTERVAL;
                    wake_at = Some(wake_at.map_or(poll, |w| w.min(poll)));
                }
            } else {
                self.poller.remove(fd);
                interest.watched = false;
            }
        }
        let earlier = match (wake_at, interest.wake_at) {
            (Some(new), Some(old)) => new < old,
            (Some(_), None) => true,
            _ => false,
        };
        interest.wake_at = wake_at;
        let wanted = interest.watched || wake_at.is_some();
        let mut registry = lock(&self.registry);
        if wanted {
            registry.insert(id, (entity.clone(), wake_at));
            interest.registered = true;
        } else if interest.registered {
            registry.remove(&id);
            interest.registered = false;
        }
        drop(registry);
        if earlier && !ON_REACTOR.with(|r| r.get()) {
            self.poller.notify();
        }
    }

    /// Asks the reactor to serve `entity` soon (from another thread).
    pub(crate) fn kick(&self, entity: Entity) {
        lock(&self.kicked).push(entity);
        self.poller.notify();
    }

    fn run(self: Arc<Self>) {
        ON_REACTOR.with(|r| r.set(true));
        let mut tokens = Vec::new();
        let mut due: Vec<(Entity, bool)> = Vec::new();
        loop {
            let now = Instant::now();
            let timeout = {
                let registry = lock(&self.registry);
                registry.values().filter_map(|(_, wake_at)| *wake_at).min().map(|at| at.saturating_duration_since(now))
            };
            if self.poller.wait(&mut tokens, timeout).is_err() {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let now = Instant::now();
            due.clear();
            {
                let registry = lock(&self.registry);
                for &token in &tokens {
                    if token == WAKE_TOKEN {
                        continue;
                    }
                    if let Some((entity, _)) = registry.get(&token) {
                        due.push((entity.clone(), true));
                    }
                }
                for (entity, wake_at) in registry.values() {
                    if wake_at.is_some_and(|at| at <= now) && !tokens.contains(&entity.id()) {
                        due.push((entity.clone(), false));
                    }
                }
            }
            due.extend(lock(&self.kicked).drain(..).map(|e| (e, false)));
            let mut events = Vec::new();
            for (entity, ready) in due.drain(..) {
                entity.service(now, ready, &mut events);
            }
            post(events);
        }
    }
}

impl Interest {
    /// True while the fd is in the epoll set.
    pub(crate) fn is_watched(&self) -> bool {
        self.watched
    }
}
