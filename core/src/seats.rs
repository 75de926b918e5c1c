//! Seats: the connections a listener keeps at once, overall and per uid, so
//! that `Listener::accept` refuses a client beyond `Options::max_connections`
//! (and `max_connections_per_uid`) as a `Server` does, with the same REJECT
//! (reason 7). A stream the listener accepted holds its seat until it is
//! closed or dropped. Also the one wording of that refusal, which the
//! `Server`'s own count uses too.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::options::Options;

/// Why one more connection of `uid` would exceed `max` (or `max_per_uid`),
/// with `total` connections kept and `of_uid` of them that uid's; None when
/// there is room.
pub(crate) fn refusal(total: usize, of_uid: usize, uid: u32, max: usize, max_per_uid: Option<usize>) -> Option<String> {
    if total >= max {
        return Some(format!("the server is full ({max} connections)"));
    }
    match max_per_uid {
        Some(max) if of_uid >= max => Some(format!("uid {uid} already has {max} connections, its limit")),
        _ => None,
    }
}

/// The seats of one listener, and how many it has.
#[derive(Debug)]
pub(crate) struct Seats {
    taken: Mutex<Taken>,
}

#[derive(Debug)]
struct Taken {
    max: usize,
    max_per_uid: Option<usize>,
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// One accepted stream's seat; dropping it frees the seat.
#[derive(Debug)]
pub(crate) struct Seat {
    seats: Arc<Seats>,
    uid: u32,
}

impl Seats {
    /// No seat taken; as many as `options.max_connections` (and
    /// `max_connections_per_uid`) say.
    pub(crate) fn new(options: &Options) -> Arc<Seats> {
        let taken = Taken {
            max: options.max_connections,
            max_per_uid: options.max_connections_per_uid,
            total: 0,
            per_uid: HashMap::new(),
        };
        Arc::new(Seats { taken: Mutex::new(taken) })
    }

    /// Why a new client of `uid` must be refused, if it must.
    pub(crate) fn refusal(&self, uid: u32) -> Option<String> {
        let t = self.taken.lock();
        refusal(t.total, t.per_uid.get(&uid).copied().unwrap_or(0), uid, t.max, t.max_per_uid)
    }

    /// Changes the number of seats (both at least 1, checked by the caller);
    /// streams beyond a lowered number stay, and newcomers wait for room.
    pub(crate) fn resize(&self, max: usize, max_per_uid: Option<usize>) {
        let mut t = self.taken.lock();
        (t.max, t.max_per_uid) = (max, max_per_uid);
    }

    /// A seat for a stream of `uid` (taken even beyond the limits: handshakes
    /// admitted side by side may complete together; the next ones are refused).
    pub(crate) fn take(self: &Arc<Self>, uid: u32) -> Seat {
        let mut taken = self.taken.lock();
        taken.total += 1;
        *taken.per_uid.entry(uid).or_default() += 1;
        Seat { seats: Arc::clone(self), uid }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut taken = self.seats.taken.lock();
        taken.total = taken.total.saturating_sub(1);
        if let Some(count) = taken.per_uid.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                taken.per_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_refuse_beyond_the_limits_until_one_is_freed() {
        let seats = Seats::new(&Options::new().max_connections(3).max_connections_per_uid(Some(2)));
        let first = seats.take(1000);
        let _second = seats.take(1000);
        let refused = seats.refusal(1000).expect("uid 1000 is at its limit");
        assert!(refused.contains("uid 1000 already has 2 connections"), "{refused}");
        assert_eq!(seats.refusal(7), None, "another uid has room");
        let _third = seats.take(7);
        let full = seats.refusal(7).expect("three seats are taken");
        assert!(full.contains("the server is full (3 connections)"), "{full}");
        drop(first);
        assert_eq!(seats.refusal(1000), None, "a freed seat is free for its uid");
        assert!(seats.taken.lock().per_uid.get(&1000) == Some(&1));
        seats.resize(2, None);
        assert!(seats.refusal(1000).is_some_and(|why| why.contains("full (2")), "fewer seats now");
    }
}
