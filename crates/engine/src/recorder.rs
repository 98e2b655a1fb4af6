//! The recorder: the engine's one path to the store.
//!
//! Step tasks send [`RunEvent`]s down a channel; one task writes them in batches, each
//! batch one transaction. Batching is what lets a 1,000-step fan-out keep up with
//! `xargs -P`: while one transaction commits, the next batch accumulates. Events that
//! must be durable before the engine goes on (the run's creation and its end) are sent
//! with [`Recorder::flush`], which waits until everything sent so far is committed.

use rota_store::{RunEvent, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Largest number of events written in one transaction.
const MAX_BATCH: usize = 4096;

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
    /// Starts the recorder task writing to `store`.
    pub fn spawn(store: Store) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(store, rx));
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

async fn write_loop(store: Store, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut batch: Vec<RunEvent> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    let mut failure: Option<String> = None;
    while let Some(first) = rx.recv().await {
        take(first, &mut batch, &mut waiters);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(message) => take(message, &mut batch, &mut waiters),
                Err(_) => break,
            }
        }
        if failure.is_none()
            && !batch.is_empty()
            && let Err(error) = write_with_retry(&store, &batch).await
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
async fn write_with_retry(store: &Store, batch: &[RunEvent]) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        match store.record(batch).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 5 => {
                attempt += 1;
                tracing::warn!(%error, attempt, "retrying a batch of run events");
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            Err(error) => return Err(error),
        }
    }
}
