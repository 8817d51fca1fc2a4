//! The event feed behind `/events`: every event of the current run kept (bounded) for a
//! browser that connects late, and a broadcast channel for the ones already connected.
//!
//! Why a broadcast channel and not one queue per browser: the run publishes once a second
//! and must never wait for a reader. [`Feed::publish`] formats the event once, appends it
//! to the history and hands it to [`tokio::sync::broadcast`], whose `send` never blocks; a
//! browser that falls more than [`LAG`] events behind loses the oldest (it is told how
//! many, and the page marks the gap) instead of slowing anything. The lock is held for an
//! append and a send, once a second — never on the per-message path.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Events kept for a browser that connects late: an hour of seconds (older ones are
/// dropped first, so the page then starts its timeline later).
pub const HISTORY: usize = 3_600;

/// Events a connected browser may fall behind before it skips ahead.
pub const LAG: usize = 64;

/// One server-sent event, formatted once (`event: NAME\ndata: JSON\n\n`).
#[derive(Debug, Clone)]
pub struct Event {
    /// The bytes sent on the wire.
    pub bytes: Bytes,
    /// The last event of the stream: the server is going away, the browser should stop.
    pub last: bool,
}

impl Event {
    /// An event named `name` carrying `data` (one line of JSON: no newline).
    pub fn new(name: &str, data: &str) -> Self {
        Event { bytes: Bytes::from(format!("event: {name}\ndata: {data}\n\n")), last: false }
    }
}

#[derive(Debug)]
struct State {
    history: VecDeque<Event>,
    ended: bool,
}

/// What the run publishes into and each `/events` request subscribes to.
#[derive(Debug, Clone)]
pub struct Feed {
    state: Arc<Mutex<State>>,
    tx: broadcast::Sender<Event>,
}

impl Default for Feed {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(LAG);
        Feed { state: Arc::new(Mutex::new(State { history: VecDeque::new(), ended: false })), tx }
    }
}

/// A browser's view of the feed: the history at subscription time, then what follows.
#[derive(Debug)]
pub struct Subscription {
    /// Events published before the browser came, oldest first.
    pub history: Vec<Event>,
    /// Events published after (`None` once the feed has ended: history is all there is).
    pub rx: Option<broadcast::Receiver<Event>>,
}

impl Feed {
    /// Appends `event` to the history and sends it to every connected browser; never
    /// waits for one.
    pub fn publish(&self, event: Event) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.history.len() == HISTORY {
            s.history.pop_front();
        }
        s.ended |= event.last;
        s.history.push_back(event.clone());
        // No receiver is not an error: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// Forgets the history (a new run of a batch starts: its timeline begins empty).
    pub fn restart(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.history.clear();
        }
    }

    /// The history so far and a receiver for what follows, taken under the publish lock
    /// so that no event is missed or seen twice.
    pub fn subscribe(&self) -> Subscription {
        let Ok(s) = self.state.lock() else { return Subscription { history: Vec::new(), rx: None } };
        let rx = (!s.ended).then(|| self.tx.subscribe());
        Subscription { history: s.history.iter().cloned().collect(), rx }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_subscriber_gets_the_history_then_the_rest_and_a_slow_one_skips() {
        let feed = Feed::default();
        feed.publish(Event::new("second", "{\"t\":1}"));
        let mut sub = feed.subscribe();
        assert_eq!(sub.history.len(), 1);
        assert_eq!(&sub.history[0].bytes[..], b"event: second\ndata: {\"t\":1}\n\n");
        for t in 0..LAG + 10 {
            feed.publish(Event::new("second", &t.to_string()));
        }
        let rx = sub.rx.as_mut().expect("not ended");
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(10))), "the slow one skips");
        feed.publish(Event { last: true, ..Event::new("end", "{}") });
        assert!(feed.subscribe().rx.is_none(), "after the end: the history only");
        assert_eq!(feed.subscribe().history.len(), LAG + 12);
        feed.restart();
        assert!(feed.subscribe().history.is_empty());
    }
}
