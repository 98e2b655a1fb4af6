//! When the daemon's control poll reads the store: each poll without the store's wake-ups
//! (SQLite); with them (PostgreSQL's `LISTEN/NOTIFY`), when a wake-up says runs were queued,
//! a cancel was requested or jobs or pause states changed, and otherwise only every
//! [`LISTENING_POLL`] as a safety net. The job directory is looked at each poll either way
//! (it costs no query).

use std::time::Duration;

use rota_store::Wake;
use tokio::time::Instant;

/// The store's part of the control poll, when wake-ups tell what changed.
pub const LISTENING_POLL: Duration = Duration::from_secs(30);

/// Whether the control poll reads the store this time.
#[derive(Debug, Default)]
pub(crate) struct StorePoll {
    listening: bool,
    woken: bool,
    last: Option<Instant>,
}

impl StorePoll {
    /// Wake-ups come (`listening`), or not.
    pub(crate) fn listening(&mut self, listening: bool) {
        self.listening = listening;
    }

    /// Whether `wake` concerns the control poll; if so the next poll reads the store.
    pub(crate) fn woken(&mut self, wake: Wake) -> bool {
        let concerns = matches!(
            wake,
            Wake::Queued | Wake::Cancel | Wake::Changed | Wake::Resync
        );
        self.woken |= concerns;
        concerns
    }

    /// The next poll reads the store, whatever wakes: a queued run could not be claimed yet
    /// (its job runs elsewhere as often as it may, or a worker may still run one of its
    /// attempts), and nothing notifies when that changes.
    pub(crate) fn again(&mut self) {
        self.woken = true;
    }

    /// Whether this poll reads the store (and, if so, it counts as read now).
    pub(crate) fn due(&mut self) -> bool {
        let due = !self.listening
            || self.woken
            || self
                .last
                .is_none_or(|last| last.elapsed() >= LISTENING_POLL);
        if due {
            self.woken = false;
            self.last = Some(Instant::now());
        }
        due
    }
}
