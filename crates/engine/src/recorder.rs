//! The recorder: the engine's one path to the store.
//!
//! Step tasks send [`RunEvent`]s down a channel; one task writes them in batches, each
//! batch one transaction. Batching is what lets a 1,000-step fan-out keep up with
//! `xargs -P`: after the first event of a batch the task waits up to [`LINGER`] for more,
//! so a busy run commits a few dozen events at a time instead of one or two, and while one
//! transaction commits, the next batch accumulates. Events that must be durable before the
//! engine goes on (the run's creation, an attempt's start under `rota serve`, the run's
//! end) are sent with [`Recorder::flush`], which ends the wait at once and returns when
//! everything sent so far is committed.

use std::time::Duration;

use rota_store::{Owner, RunEvent, Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Largest number of events written in one transaction.
const MAX_BATCH: usize = 4096;

/// How long the first event of a batch waits for others before it is written, unless a
/// flush asks for it sooner.
///
/// Each transaction costs the same fixed work (taking the write lock, re-reading pages
/// another pooled connection changed, writing every touched page to the WAL), and a
/// fan-out of short steps sends an event every few hundred microseconds: one commit per
/// event spent more CPU than the step's own process (bench/README.md). Nothing waits on
/// an unflushed event, so the only cost is that readers of the store (`rota runs`, the
/// API) see progress up to this much later; events not yet written when `rota` dies are
/// lost with or without the wait, and the run is then abandoned by recovery.
pub const LINGER: Duration = Duration::from_millis(10);

// Events are the common message; boxing them to shrink the rare `Flush` would cost an
// allocation per event.
#[allow(clippy::large_enum_variant)]
enum Message {
    Event(RunEvent),
    /// Events that must land in the same transaction.
    Together(Vec<RunEvent>),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// Handle to the recorder task; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Message>,
}

/// The recorder task failed to write; the run cannot be recorded any more.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot record run events: {0}")]
pub struct RecordError(pub String);

impl Recorder {
    /// Starts the recorder task writing to `store` for this process, which must own the
    /// runs it records (`Store::record_as`): once another process took this one for dead
    /// and its runs over, every write is refused and the run cannot be recorded any more.
    pub fn spawn(store: Store) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(store, crate::owner::this_process(), rx));
        Recorder { tx }
    }

    /// Queues an event; it is written with the next batch.
    pub fn send(&self, event: RunEvent) {
        // A closed channel means the task ended after a write error, which the next
        // flush reports; dropping the event here loses nothing that flush won't name.
        let _ = self.tx.send(Message::Event(event));
    }

    /// Queues events that must be committed in one transaction.
    pub fn send_together(&self, events: Vec<RunEvent>) {
        let _ = self.tx.send(Message::Together(events));
    }

    /// Waits until every event sent so far is committed.
    pub async fn flush(&self) -> Result<(), RecordError> {
        let (done_tx, done_rx) = oneshot::channel();
        self.tx
            .send(Message::Flush(done_tx))
            .map_err(|_| RecordError("recorder stopped".into()))?;
        match done_rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(RecordError(message)),
            Err(_) => Err(RecordError("recorder stopped".into())),
        }
    }
}

async fn write_loop(store: Store, owner: Owner, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut batch: Vec<RunEvent> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    let mut failure: Option<String> = None;
    while let Some(first) = rx.recv().await {
        take(first, &mut batch, &mut waiters);
        let deadline = Instant::now() + LINGER;
        while waiters.is_empty() && batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(message)) => take(message, &mut batch, &mut waiters),
                // Closed: write what we have; the outer loop then ends.
                Ok(None) | Err(_) => break,
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(message) => take(message, &mut batch, &mut waiters),
                Err(_) => break,
            }
        }
        if failure.is_none()
            && !batch.is_empty()
            && let Err(error) = write_with_retry(&store, &owner, &batch).await
        {
            tracing::error!(%error, "recording run events failed");
            failure = Some(error.to_string());
        }
        batch.clear();
        for waiter in waiters.drain(..) {
            let _ = waiter.send(failure.clone().map_or(Ok(()), Err));
        }
    }
}

fn take(
    message: Message,
    batch: &mut Vec<RunEvent>,
    waiters: &mut Vec<oneshot::Sender<Result<(), String>>>,
) {
    match message {
        Message::Event(event) => batch.push(event),
        Message::Together(events) => batch.extend(events),
        Message::Flush(waiter) => waiters.push(waiter),
    }
}

/// Another `rota` process may hold the write lock for a moment longer than the store's
/// busy timeout; a few retries ride that out instead of losing the batch.
async fn write_with_retry(
    store: &Store,
    owner: &Owner,
    batch: &[RunEvent],
) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        match store.record_as(owner, batch).await {
            Ok(()) => return Ok(()),
            // Taken over: no retry changes that.
            Err(error @ StoreError::NotOwner { .. }) => return Err(error),
            Err(error) if attempt < 5 => {
                attempt += 1;
                tracing::warn!(%error, attempt, "retrying a batch of run events");
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            Err(error) => return Err(error),
        }
    }
}
