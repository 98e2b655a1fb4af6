//! Triggers compiled for the scheduler: a stable key per trigger (the store's identity of an
//! occurrence is namespace, job, trigger key and due instant) and the next due instant of the
//! time-based ones, computed by `rota-sched`.

use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rota_core::model::{AfterOutcome, IntervalAnchor, Job, RunStatus, Trigger, WebhookSignature};
use rota_sched::cron::CronExpr;
use rota_sched::interval::{grid_after, jitter_delay};

use crate::ServerError;

/// A trigger ready to be evaluated.
#[derive(Debug, Clone)]
pub struct CompiledTrigger {
    /// Stable text naming the trigger; changing the trigger changes the key.
    pub key: String,
    /// What fires it.
    pub kind: TriggerKind,
    /// Upper bound of the random delay added to each firing.
    pub jitter: Option<Duration>,
}

/// The compiled forms of the model's triggers.
#[derive(Debug, Clone)]
pub enum TriggerKind {
    /// A cron expression in a zone.
    Cron {
        /// The parsed expression (boxed: it is much larger than the other kinds).
        expr: Box<CronExpr>,
        /// Its zone.
        tz: TimeZone,
    },
    /// A fixed interval.
    Interval {
        /// The period.
        every: Duration,
        /// Fixed rate (start) or fixed delay (end).
        anchor: IntervalAnchor,
    },
    /// One instant.
    At {
        /// The instant.
        time: Timestamp,
    },
    /// Another job's run finished.
    After {
        /// The other job (same namespace).
        job: String,
        /// Which outcomes fire.
        on: AfterOutcome,
    },
    /// `POST /hooks/<namespace>/<job>`.
    Webhook {
        /// Name of the environment variable holding the shared secret.
        secret: String,
        /// How requests prove they know it.
        signature: WebhookSignature,
    },
}

impl CompiledTrigger {
    /// Compiles one trigger of a validated job.
    pub fn compile(trigger: &Trigger) -> Result<CompiledTrigger, ServerError> {
        let bad = |why: String| ServerError::BadTrigger(why);
        Ok(match trigger {
            Trigger::Cron {
                expr,
                timezone,
                jitter,
            } => CompiledTrigger {
                key: format!("cron:{expr}@{timezone}"),
                kind: TriggerKind::Cron {
                    expr: Box::new(CronExpr::parse(expr).map_err(|e| bad(e.to_string()))?),
                    tz: TimeZone::get(timezone)
                        .map_err(|e| bad(format!("time zone {timezone:?}: {e}")))?,
                },
                jitter: *jitter,
            },
            Trigger::Interval {
                every,
                anchor,
                jitter,
            } => CompiledTrigger {
                key: format!(
                    "every:{}ms:{}",
                    every.as_millis(),
                    match anchor {
                        IntervalAnchor::Start => "start",
                        IntervalAnchor::End => "end",
                    }
                ),
                kind: TriggerKind::Interval {
                    every: *every,
                    anchor: *anchor,
                },
                jitter: *jitter,
            },
            Trigger::At { time } => CompiledTrigger {
                key: format!("at:{time}"),
                kind: TriggerKind::At {
                    time: parse_instant(time)
                        .ok_or_else(|| bad(format!("{time:?} is not an RFC 3339 instant")))?,
                },
                jitter: None,
            },
            Trigger::After { job, on } => CompiledTrigger {
                key: format!("after:{job}:{}", after_text(*on)),
                kind: TriggerKind::After {
                    job: job.clone(),
                    on: *on,
                },
                jitter: None,
            },
            Trigger::Webhook { secret, signature } => CompiledTrigger {
                key: "webhook".to_owned(),
                kind: TriggerKind::Webhook {
                    secret: secret.clone(),
                    signature: *signature,
                },
                jitter: None,
            },
        })
    }

    /// Every trigger of a job.
    pub fn compile_all(job: &Job) -> Result<Vec<CompiledTrigger>, ServerError> {
        job.triggers.iter().map(CompiledTrigger::compile).collect()
    }

    /// Whether the scheduler computes this trigger's occurrences from the clock.
    pub fn is_timed(&self) -> bool {
        matches!(
            self.kind,
            TriggerKind::Cron { .. } | TriggerKind::Interval { .. } | TriggerKind::At { .. }
        )
    }

    /// The first occurrence strictly after `after`, for the time-based triggers whose
    /// occurrences do not depend on runs: cron, start-anchored intervals (on the grid that
    /// begins at `origin`) and one-off instants. `None` for the others or when it never
    /// fires again.
    pub fn next_after(&self, origin: Timestamp, after: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            TriggerKind::Cron { expr, tz } => expr.next_timestamp(tz, after),
            TriggerKind::Interval {
                every,
                anchor: IntervalAnchor::Start,
            } => grid_after(origin, *every, after).ok().flatten(),
            TriggerKind::At { time } => (*time > after).then_some(*time),
            _ => None,
        }
    }

    /// The jitter of the occurrence due at `at`: the same every time it is computed (it is
    /// derived from the trigger key and the instant), so a restart keeps it.
    pub fn jitter_at(&self, at: Timestamp) -> Duration {
        let Some(bound) = self.jitter else {
            return Duration::ZERO;
        };
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.key.hash(&mut hasher);
        at.as_nanosecond().hash(&mut hasher);
        jitter_delay(bound, hasher.finish())
    }
}

/// Whether an `after` trigger with outcome `on` fires for a run that ended with `status`.
pub fn after_fires(on: AfterOutcome, status: RunStatus) -> bool {
    match on {
        AfterOutcome::Success => status == RunStatus::Succeeded,
        AfterOutcome::Failure => matches!(status, RunStatus::Failed | RunStatus::TimedOut),
        AfterOutcome::Any => status.is_terminal(),
    }
}

fn after_text(on: AfterOutcome) -> &'static str {
    match on {
        AfterOutcome::Success => "success",
        AfterOutcome::Failure => "failure",
        AfterOutcome::Any => "any",
    }
}

/// RFC 3339 with an offset, or a zoned datetime jiff understands.
pub fn parse_instant(text: &str) -> Option<Timestamp> {
    text.parse::<Timestamp>()
        .ok()
        .or_else(|| text.parse::<jiff::Zoned>().ok().map(|z| z.timestamp()))
}

/// The next `n` occurrences of a job's time-based triggers after `now`, merged in time order,
/// each with its trigger key. Start-anchored intervals use `origin_of(key)` as their grid
/// origin (the store's trigger state) or `now`; end-anchored intervals are shown due one
/// period after `now` (their real due time depends on when the running run ends).
pub fn upcoming(
    triggers: &[CompiledTrigger],
    now: Timestamp,
    n: usize,
    origin_of: impl Fn(&str) -> Option<Timestamp>,
) -> Vec<(Timestamp, String)> {
    let mut out = Vec::new();
    for trigger in triggers {
        let origin = origin_of(&trigger.key).unwrap_or(now);
        if let TriggerKind::Interval {
            every,
            anchor: IntervalAnchor::End,
        } = trigger.kind
        {
            if let Ok(at) = now.checked_add(every) {
                out.push((at, trigger.key.clone()));
            }
            continue;
        }
        let mut cursor = now;
        for _ in 0..n {
            match trigger.next_after(origin, cursor) {
                Some(at) if at > cursor => {
                    out.push((at, trigger.key.clone()));
                    cursor = at;
                }
                _ => break,
            }
        }
    }
    out.sort();
    out.truncate(n);
    out
}
