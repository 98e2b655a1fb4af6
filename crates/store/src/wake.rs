//! Wake-ups: what other processes changed, as PostgreSQL tells it (`LISTEN/NOTIFY`).
//!
//! Migration 0017 adds triggers that notify channel `rota_wake` when a dispatch is handed
//! over or goes back to pending, when one ends, when a run becomes queued, when a run's
//! cancel is requested and when jobs or pause states change. Triggers, rather than
//! `pg_notify` in the store's statements, because they fire for every writer and statement
//! alike, including those that know nothing of wake-ups (recovery, cancels, plans, the
//! scheduler), and PostgreSQL sends each notification only when its transaction commits,
//! once per payload.
//!
//! [`Store::wake_ups`] hands out receivers of one listener per store handle (its own
//! connection, apart from the pool), started on first use and ended when the pool closes
//! or no receiver is left. When the connection is lost the listener reconnects (waiting
//! longer after each failure) and then sends [`Wake::Resync`]: what changed meanwhile was
//! not told, so a receiver looks at everything again. It sends `Resync` on its first
//! connection too. On SQLite there are no notifications: the receiver never yields, and
//! its users keep polling.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::{Backend, Store};

/// The channel the triggers notify.
const CHANNEL: &str = "rota_wake";

/// Wake-ups a slow receiver may fall behind by before it is told [`Wake::Resync`].
const CAPACITY: usize = 64;

/// The wait after the first failure to connect; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wake {
    /// A dispatch waits for a worker (handed over, or an unconfirmed claim went back).
    Work,
    /// A dispatch ended: done, abandoned or withdrawn.
    Ended,
    /// A run became queued.
    Queued,
    /// A run's cancel was requested.
    Cancel,
    /// Jobs or pause states changed.
    Changed,
    /// Listening (re)started, or this receiver fell behind: changes may have gone untold.
    Resync,
}

impl Wake {
    fn parse(payload: &str) -> Option<Wake> {
        match payload {
            "work" => Some(Wake::Work),
            "ended" => Some(Wake::Ended),
            "queued" => Some(Wake::Queued),
            "cancel" => Some(Wake::Cancel),
            "changed" => Some(Wake::Changed),
            _ => None,
        }
    }
}

/// A receiver of wake-ups ([`Store::wake_ups`]).
#[derive(Debug)]
pub struct WakeUps {
    rx: Option<broadcast::Receiver<Wake>>,
}

impl WakeUps {
    /// Whether wake-ups come at all (PostgreSQL); without them, poll.
    pub fn is_live(&self) -> bool {
        self.rx.is_some()
    }

    /// The next wake-up; `None` on SQLite and once the store is closed.
    pub async fn recv(&mut self) -> Option<Wake> {
        let rx = self.rx.as_mut()?;
        match rx.recv().await {
            Ok(wake) => Some(wake),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Wake::Resync),
            Err(broadcast::error::RecvError::Closed) => {
                self.rx = None;
                None
            }
        }
    }

    /// The next wake-up; never, on SQLite or once the store is closed (for a `select!`).
    pub async fn next(&mut self) -> Wake {
        match self.recv().await {
            Some(wake) => wake,
            None => std::future::pending().await,
        }
    }
}

/// A store handle's listener, shared by its clones.
#[derive(Default)]
pub(crate) struct Listener {
    /// The database URL (PostgreSQL only).
    url: Option<String>,
    /// The running listener's sender, if one runs.
    sender: Mutex<Option<broadcast::WeakSender<Wake>>>,
}

impl Listener {
    pub(crate) fn new(backend: Backend, url: &str) -> Arc<Listener> {
        Arc::new(Listener {
            url: (backend == Backend::Postgres).then(|| url.to_owned()),
            sender: Mutex::default(),
        })
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("Listener")
            .field("postgres", &self.url.is_some())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A receiver of what other processes change (see the module docs); it never yields on
    /// SQLite. Starts this handle's listener if none runs (call it inside a tokio runtime).
    pub fn wake_ups(&self) -> WakeUps {
        let Some(url) = &self.listener.url else {
            return WakeUps { rx: None };
        };
        if self.pool.is_closed() {
            return WakeUps { rx: None };
        }
        let mut sender = match self.listener.sender.lock() {
            Ok(sender) => sender,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(running) = sender.as_ref().and_then(broadcast::WeakSender::upgrade) {
            return WakeUps {
                rx: Some(running.subscribe()),
            };
        }
        let (tx, rx) = broadcast::channel(CAPACITY);
        *sender = Some(tx.downgrade());
        tokio::spawn(listen(url.clone(), self.pool.clone(), tx));
        WakeUps { rx: Some(rx) }
    }
}

/// Listens until the pool closes or no receiver is left, reconnecting after each failure.
async fn listen(url: String, pool: sqlx::AnyPool, tx: broadcast::Sender<Wake>) {
    let closed = pool.close_event();
    tokio::pin!(closed);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let connect = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            () = &mut closed => return,
            connected = connect => connected,
        };
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for the store's wake-ups; trying again");
                tokio::select! {
                    () = &mut closed => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        if tx.send(Wake::Resync).is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                () = &mut closed => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => {
                    if let Some(wake) = Wake::parse(notification.payload())
                        && tx.send(wake).is_err()
                    {
                        return;
                    }
                }
                // The connection was lost: connect again, then resync.
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, "lost the store's wake-ups; listening again");
                    break;
                }
            }
        }
    }
}
