//! Next fire times of a cron expression in a time zone, DST-correct, plus preview and RFC 3339.
//!
//! The walk goes through the zone one offset segment at a time: between two transitions the
//! wall clock and real time move together, so the civil matcher of [`crate::cron`] finds the
//! next match in the segment directly, skipping whole years, months, days, hours and minutes.
//! At each transition the Vixie rules apply:
//!
//! * a *fixed-time* job ([`CronExpr::is_fixed_time`]) whose wall time falls in a spring-forward
//!   gap fires once, at the transition itself (02:30 on a 02:00→03:00 day fires at 03:00); in a
//!   fall-back overlap it fires once, at the earlier instant;
//! * every other job fires at each real instant whose wall time matches: wall times inside a gap
//!   do not exist and are skipped, wall times inside an overlap happen twice and fire twice.
//!
//! The search is bounded: it stops after the last year of a year field, or 400 years ahead
//! (one Gregorian cycle) otherwise, and at jiff's last supported year.

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp, Zoned};

use crate::cron::CronExpr;

impl CronExpr {
    /// The first fire time strictly after `after`, in the zone of `after`, or `None` if the
    /// expression never fires again (a year field in the past, or beyond the search bound).
    ///
    /// ```
    /// use rota_sched::cron::CronExpr;
    /// let e = CronExpr::parse("30 2 * * *")?;
    /// let after: jiff::Zoned = "2026-03-07T12:00[America/New_York]".parse()?;
    /// let next = e.next_after(&after).ok_or("none")?;
    /// // 02:30 does not exist on 2026-03-08; a fixed-time job fires when the gap ends.
    /// assert_eq!(rota_sched::next::rfc3339(&next), "2026-03-08T03:00:00-04:00");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let tz = after.time_zone();
        self.next_timestamp(tz, after.timestamp())
            .map(|ts| ts.to_zoned(tz.clone()))
    }

    /// Like [`CronExpr::next_after`] on bare timestamps, for callers that keep the zone apart.
    pub fn next_timestamp(&self, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        let fixed = self.is_fixed_time();
        let mut t = after;
        let mut offset = tz.to_offset(t);
        // Whole seconds strictly after `after`.
        let mut min_wall = floor_second(offset.to_datetime(t))
            .checked_add(SignedDuration::from_secs(1))
            .ok()?;
        let horizon = self.horizon_year(i32::from(min_wall.year()));
        loop {
            if i32::from(min_wall.year()) > horizon {
                return None;
            }
            if fixed {
                // After a fall-back transition the repeated wall times already fired at their
                // earlier instant; start past them.
                if let Some(end) = repeated_until(tz, t, offset) {
                    min_wall = min_wall.max(end);
                }
            }
            let next_transition = tz.following(t).next();
            let end_wall = next_transition
                .as_ref()
                .map(|tr| offset.to_datetime(tr.timestamp()));
            if let Some(found) = self.first_match(min_wall, end_wall, horizon) {
                return offset.to_timestamp(found).ok();
            }
            let tr = next_transition?;
            let new_offset = tr.offset();
            if fixed && new_offset > offset {
                // Spring forward: wall times in [gap start, gap end) do not exist.
                let gap_start = offset.to_datetime(tr.timestamp());
                let gap_end = new_offset.to_datetime(tr.timestamp());
                if self
                    .first_match(gap_start, Some(gap_end), horizon)
                    .is_some()
                {
                    return Some(tr.timestamp());
                }
            }
            t = tr.timestamp();
            offset = new_offset;
            min_wall = offset.to_datetime(t);
        }
    }
}

/// If the segment containing `t` (with offset `offset`) began with a fall-back transition, the
/// wall time where the repeated hour ends.
fn repeated_until(tz: &TimeZone, t: Timestamp, offset: Offset) -> Option<DateTime> {
    let probe = t.checked_add(SignedDuration::from_nanos(1)).ok()?;
    let tr = tz.preceding(probe).next()?;
    let before = tz.to_offset(
        tr.timestamp()
            .checked_sub(SignedDuration::from_nanos(1))
            .ok()?,
    );
    (before > offset).then(|| before.to_datetime(tr.timestamp()))
}

fn floor_second(dt: DateTime) -> DateTime {
    dt.with().subsec_nanosecond(0).build().unwrap_or(dt)
}

/// The next `n` fire times strictly after `from`, in zone `tz` (fewer if the expression stops
/// firing).
pub fn preview(expr: &CronExpr, tz: TimeZone, from: Timestamp, n: usize) -> Vec<Zoned> {
    let mut out = Vec::with_capacity(n.min(1024));
    let mut cur = from.to_zoned(tz);
    while out.len() < n {
        match expr.next_after(&cur) {
            Some(next) => {
                cur = next.clone();
                out.push(next);
            }
            None => break,
        }
    }
    out
}

/// RFC 3339 with the zone's UTC offset at that instant, e.g. `2026-03-29T03:00:00+02:00`.
pub fn rfc3339(z: &Zoned) -> String {
    z.timestamp().display_with_offset(z.offset()).to_string()
}
