//! Cron expressions: parsing and matching of civil (wall-clock) date-times.
//!
//! Five fields (`min hour dom mon dow`), six (seconds first) or seven (seconds … year) are accepted,
//! plus the macros `@yearly @annually @monthly @weekly @daily @midnight @hourly`.
//! Syntax beyond Vixie cron (`L`, `W`, `#`, `?`) is rejected with a message saying so.
//! Expressions that can never fire (`0 0 31 2 *`) are rejected at parse time: without a year
//! field one 400-year Gregorian cycle is searched (the calendar repeats after it), with one the
//! listed years are. Parsing never reads the clock, so a year field wholly in the past
//! (`0 0 0 1 1 * 2020`) parses, and [`CronExpr::next_after`] returns `None` for it at once.
//!
//! The matcher is our own rather than croner's because Rota's DST rules (Vixie's: fixed-time
//! jobs fire once after a gap and once in an overlap, every other job fires at each real instant
//! that matches) need the civil matcher and the time-zone walk kept apart; the walk lives in
//! [`crate::next`].
//!
//! # Day-of-month and day-of-week
//!
//! When both day fields are restricted a day matches if either one matches (OR), otherwise both
//! must match (AND, where the unrestricted one matches every day).
//! What "restricted" means follows [`DayRule`]. By default it is [`DayRule::Union`], the
//! documented crontab(5) reading that SPEC §3 asks for ("OR, also for step forms such as
//! `*/2`"): only a bare `*` is unrestricted, so `0 0 */2 * MON` fires on odd days and on
//! Mondays. [`DayRule::VixieStar`] is what Vixie cron's `entry.c` (and cronie) actually do: a
//! field whose text *begins* with `*` sets `DOM_STAR`/`DOW_STAR` and counts as unrestricted, so
//! the same expression fires only on odd days that are Mondays. The two differ only for day
//! fields that begin with `*` but are not a bare `*`.

use std::fmt;

use jiff::civil::{Date, DateTime};

/// First year accepted in the seventh field.
pub const MIN_YEAR: i16 = 1970;
/// Last year accepted in the seventh field.
pub const MAX_YEAR: i16 = 2199;

/// How far ahead (in years) a search runs when the expression has no year field.
/// The Gregorian calendar repeats every 400 years, so a day pattern that matches at all matches
/// within any 400-year span.
pub(crate) const CYCLE_YEARS: i16 = 400;

/// Which rule decides whether a day field is "restricted" for the OR rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DayRule {
    /// Vixie cron's implementation: a field whose text begins with `*` (`*`, `*/2`, `*,5`) is
    /// unrestricted.
    VixieStar,
    /// crontab(5)'s wording, and Rota's default as SPEC §3 asks: only a bare `*` is
    /// unrestricted; `*/2` is restricted, so it is ORed with the other day field.
    #[default]
    Union,
}

/// One of the (up to) seven fields, used to name the culprit in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Seconds, 0–59 (first of six or seven fields).
    Second,
    /// Minutes, 0–59.
    Minute,
    /// Hours, 0–23.
    Hour,
    /// Day of the month, 1–31.
    DayOfMonth,
    /// Month, 1–12 or JAN–DEC.
    Month,
    /// Day of the week, 0–7 (0 and 7 are Sunday) or SUN–SAT.
    DayOfWeek,
    /// Year, [`MIN_YEAR`]–[`MAX_YEAR`] (seventh field).
    Year,
}

impl Field {
    fn bounds(self) -> (u16, u16) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
            Field::Year => (MIN_YEAR as u16, MAX_YEAR as u16),
        }
    }

    fn names(self) -> &'static [&'static str] {
        const MONTHS: [&str; 12] = [
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        match self {
            Field::Month => &MONTHS,
            Field::DayOfWeek => &DAYS,
            _ => &[],
        }
    }

    /// What is subtracted from a value before it is stored in [`Bits`].
    fn offset(self) -> u16 {
        if self == Field::Year {
            MIN_YEAR as u16
        } else {
            0
        }
    }

    /// Value of `names()[0]`.
    fn names_base(self) -> u16 {
        if self == Field::Month { 1 } else { 0 }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
            Field::Year => "year",
        })
    }
}

/// What is wrong with an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CronErrorKind {
    /// The expression is empty.
    Empty,
    /// Not 5, 6 or 7 whitespace-separated fields.
    FieldCount(usize),
    /// An `@` macro Rota does not know (or does not support, like `@reboot`).
    UnknownMacro(String),
    /// One field is malformed; the message says how.
    Field {
        /// The bad field.
        field: Field,
        /// What is wrong with it.
        message: String,
    },
    /// Well-formed, but no date-time can ever match.
    NeverFires,
}

/// Why an expression is invalid; the message quotes the expression and names the bad field, e.g.
/// `invalid cron expression "61 * * * *": minute field: value 61 out of range 0-59`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression {text:?}: {kind}")]
pub struct CronError {
    /// The expression as given.
    pub text: String,
    /// What is wrong with it.
    pub kind: CronErrorKind,
}

impl fmt::Display for CronErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CronErrorKind::Empty => f.write_str("empty expression"),
            CronErrorKind::FieldCount(n) => write!(
                f,
                "expected 5 fields (minute hour day-of-month month day-of-week), 6 (seconds first) or 7 (seconds … year), found {n}"
            ),
            CronErrorKind::UnknownMacro(m) => write!(
                f,
                "unknown macro {m:?} (supported: @yearly @annually @monthly @weekly @daily @midnight @hourly)"
            ),
            CronErrorKind::Field { field, message } => write!(f, "{field} field: {message}"),
            CronErrorKind::NeverFires => f.write_str(
                "it can never fire (no date matches its day-of-month, month, day-of-week and year fields)",
            ),
        }
    }
}

/// A set of small integers (0..256), one bit each, offset by the field's base for years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bits {
    words: [u64; 4],
}

impl Bits {
    fn insert(&mut self, i: u16) {
        self.words[usize::from(i / 64)] |= 1 << (i % 64);
    }

    pub(crate) fn contains(&self, i: i32) -> bool {
        (0..256).contains(&i) && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// The smallest member `>= i`.
    pub(crate) fn next_from(&self, i: i32) -> Option<i32> {
        (i.max(0)..256).find(|&j| self.contains(j))
    }

    pub(crate) fn len(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    fn max(&self) -> Option<i32> {
        (0..256).rev().find(|&j| self.contains(j))
    }
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    pub(crate) seconds: Bits,
    pub(crate) minutes: Bits,
    pub(crate) hours: Bits,
    pub(crate) doms: Bits,
    pub(crate) months: Bits,
    /// 0 = Sunday … 6 = Saturday (7 is folded into 0).
    pub(crate) dows: Bits,
    /// `year - MIN_YEAR`; `None` when there is no year field.
    pub(crate) years: Option<Bits>,
    /// Both day fields restricted: a day matches if either does.
    pub(crate) day_or: bool,
}

impl CronExpr {
    /// Parses 5, 6 (seconds first) or 7 (… year) fields, or an `@` macro, with the default
    /// [`DayRule::Union`].
    ///
    /// ```
    /// use rota_sched::cron::CronExpr;
    /// let e = CronExpr::parse("0 30 2 * * MON-FRI")?;
    /// assert!(e.is_fixed_time());
    /// let err = CronExpr::parse("61 * * * *").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"invalid cron expression "61 * * * *": minute field: value 61 out of range 0-59"#
    /// );
    /// # Ok::<(), rota_sched::cron::CronError>(())
    /// ```
    pub fn parse(text: &str) -> Result<CronExpr, CronError> {
        Self::parse_with(text, DayRule::default())
    }

    /// Parses like [`CronExpr::parse`] with an explicit rule for the day-field OR.
    pub fn parse_with(text: &str, rule: DayRule) -> Result<CronExpr, CronError> {
        let err = |kind| CronError {
            text: text.to_owned(),
            kind,
        };
        let trimmed = text.trim();
        let expanded = if let Some(name) = trimmed.strip_prefix('@') {
            match name.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => return Err(err(CronErrorKind::UnknownMacro(trimmed.to_owned()))),
            }
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_ascii_whitespace().collect();
        let (sec, rest, year) = match fields.len() {
            0 => return Err(err(CronErrorKind::Empty)),
            5 => ("0", &fields[..], None),
            6 => (fields[0], &fields[1..], None),
            7 => (fields[0], &fields[1..6], Some(fields[6])),
            n => return Err(err(CronErrorKind::FieldCount(n))),
        };
        let field = |f: Field, s: &str| {
            parse_field(f, s).map_err(|message| err(CronErrorKind::Field { field: f, message }))
        };
        let seconds = field(Field::Second, sec)?;
        let minutes = field(Field::Minute, rest[0])?;
        let hours = field(Field::Hour, rest[1])?;
        let doms = field(Field::DayOfMonth, rest[2])?;
        let months = field(Field::Month, rest[3])?;
        let mut dows = field(Field::DayOfWeek, rest[4])?;
        if dows.contains(7) {
            dows.insert(0);
        }
        let years = match year {
            None => None,
            Some(y) => Some(field(Field::Year, y)?),
        };
        let unrestricted = |s: &str| match rule {
            DayRule::VixieStar => s.starts_with('*'),
            DayRule::Union => s == "*",
        };
        let day_or = !unrestricted(rest[2]) && !unrestricted(rest[4]);
        let expr = CronExpr {
            text: text.to_owned(),
            seconds,
            minutes,
            hours,
            doms,
            months,
            dows,
            years,
            day_or,
        };
        if !expr.can_fire() {
            return Err(err(CronErrorKind::NeverFires));
        }
        Ok(expr)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the second, minute and hour fields each hold a single value: such a job fires
    /// once after a DST gap and once in a DST overlap (see [`crate::next`]).
    pub fn is_fixed_time(&self) -> bool {
        self.seconds.len() == 1 && self.minutes.len() == 1 && self.hours.len() == 1
    }

    /// True when both day fields are restricted, so a day matches if either matches.
    pub fn days_are_ored(&self) -> bool {
        self.day_or
    }

    /// Whether a wall-clock date-time matches every field (sub-second part ignored).
    pub fn matches(&self, dt: DateTime) -> bool {
        self.date_matches(dt.date())
            && self.hours.contains(i32::from(dt.hour()))
            && self.minutes.contains(i32::from(dt.minute()))
            && self.seconds.contains(i32::from(dt.second()))
    }

    fn year_ok(&self, year: i32) -> bool {
        self.years
            .is_none_or(|y| y.contains(year - i32::from(MIN_YEAR)))
    }

    /// Whether a calendar date matches the year, month and day fields.
    pub fn date_matches(&self, date: Date) -> bool {
        self.year_ok(i32::from(date.year()))
            && self.months.contains(i32::from(date.month()))
            && self.day_ok(date)
    }

    fn day_ok(&self, date: Date) -> bool {
        let dom = self.doms.contains(i32::from(date.day()));
        let dow = self
            .dows
            .contains(i32::from(date.weekday().to_sunday_zero_offset()));
        if self.day_or { dom || dow } else { dom && dow }
    }

    /// The last year a search starting in `from_year` needs to look at.
    pub(crate) fn horizon_year(&self, from_year: i32) -> i32 {
        let h = match self.years.and_then(|y| y.max()) {
            Some(max) => max + i32::from(MIN_YEAR),
            None => from_year + i32::from(CYCLE_YEARS),
        };
        h.min(9998)
    }

    fn can_fire(&self) -> bool {
        let start_year = match self.years {
            Some(y) => y.next_from(0).map_or(9999, |v| v + i32::from(MIN_YEAR)),
            None => 2000,
        };
        let Ok(start) = DateTime::new(start_year as i16, 1, 1, 0, 0, 0, 0) else {
            return false;
        };
        self.first_match(start, None, self.horizon_year(start_year))
            .is_some()
    }

    /// The first wall-clock date-time `>= from` (whole seconds) that matches, before `until`
    /// (exclusive) and in a year `<= max_year`. Skips whole years, months, days, hours and
    /// minutes that cannot match.
    pub(crate) fn first_match(
        &self,
        from: DateTime,
        until: Option<DateTime>,
        max_year: i32,
    ) -> Option<DateTime> {
        let mut y = i32::from(from.year());
        let mut mo = i32::from(from.month());
        let mut d = i32::from(from.day());
        let mut h = i32::from(from.hour());
        let mut mi = i32::from(from.minute());
        let mut s = i32::from(from.second());
        let max_year = max_year.min(9998);
        loop {
            if y > max_year {
                return None;
            }
            if let Some(u) = until {
                let u = (
                    i32::from(u.year()),
                    i32::from(u.month()),
                    i32::from(u.day()),
                );
                if (y, mo, d) > u {
                    return None;
                }
            }
            if !self.year_ok(y) {
                let next = match self.years {
                    Some(bits) => bits.next_from(y - i32::from(MIN_YEAR))?,
                    None => return None,
                };
                (y, mo, d, h, mi, s) = (next + i32::from(MIN_YEAR), 1, 1, 0, 0, 0);
                continue;
            }
            if !self.months.contains(mo) {
                match self.months.next_from(mo + 1).filter(|&m| m <= 12) {
                    Some(m) => (mo, d, h, mi, s) = (m, 1, 0, 0, 0),
                    None => (y, mo, d, h, mi, s) = (y + 1, 1, 1, 0, 0, 0),
                }
                continue;
            }
            // `y` is within 1970..=9998 and `mo` within 1..=12 here, so the date exists.
            let first = Date::new(y as i16, mo as i8, 1).ok()?;
            if d > i32::from(first.days_in_month()) {
                (mo, d, h, mi, s) = (mo + 1, 1, 0, 0, 0);
                if mo > 12 {
                    (y, mo) = (y + 1, 1);
                }
                continue;
            }
            let date = Date::new(y as i16, mo as i8, d as i8).ok()?;
            if !self.day_ok(date) {
                (d, h, mi, s) = (d + 1, 0, 0, 0);
                continue;
            }
            match self.hours.next_from(h).filter(|&v| v <= 23) {
                Some(v) if v == h => {}
                Some(v) => {
                    (h, mi, s) = (v, 0, 0);
                }
                None => {
                    (d, h, mi, s) = (d + 1, 0, 0, 0);
                    continue;
                }
            }
            match self.minutes.next_from(mi).filter(|&v| v <= 59) {
                Some(v) if v == mi => {}
                Some(v) => (mi, s) = (v, 0),
                None => {
                    (h, mi, s) = (h + 1, 0, 0);
                    continue;
                }
            }
            match self.seconds.next_from(s).filter(|&v| v <= 59) {
                Some(v) => s = v,
                None => {
                    (mi, s) = (mi + 1, 0);
                    continue;
                }
            }
            let found = date.at(h as i8, mi as i8, s as i8, 0);
            if until.is_some_and(|u| found >= u) {
                return None;
            }
            return Some(found);
        }
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for CronExpr {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CronExpr::parse(s)
    }
}

/// Parses one field into its set of values; the error is the message after "<field> field: ".
fn parse_field(field: Field, text: &str) -> Result<Bits, String> {
    let (lo, hi) = field.bounds();
    let mut bits = Bits::default();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("empty list item in {text:?}"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u16 = s
                    .parse()
                    .map_err(|_| format!("step {s:?} is not a number from 1 to 65535"))?;
                if step == 0 {
                    return Err(format!("step 0 in {item:?}"));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(field, a)?, value(field, b)?);
            if a > b {
                return Err(format!("range {range:?} runs backwards"));
            }
            (a, b)
        } else {
            let a = value(field, range)?;
            // `5/10` means 5-max/10, as in Vixie cron.
            (a, if step.is_some() { hi } else { a })
        };
        let step = step.unwrap_or(1);
        let mut v = start;
        while v <= end {
            // Years are stored as offsets so that the set fits 256 bits.
            bits.insert(v - field.offset());
            v = v.saturating_add(step);
        }
    }
    Ok(bits)
}

/// One value: a number in range or (for month and day-of-week) a three-letter name.
fn value(field: Field, text: &str) -> Result<u16, String> {
    let (lo, hi) = field.bounds();
    if text.is_empty() {
        return Err("missing value".to_owned());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let v: u32 = text
            .parse()
            .map_err(|_| format!("value {text} out of range {lo}-{hi}"))?;
        return match u16::try_from(v) {
            Ok(v) if (lo..=hi).contains(&v) => Ok(v),
            _ => Err(format!("value {v} out of range {lo}-{hi}")),
        };
    }
    let upper = text.to_ascii_uppercase();
    match field.names().iter().position(|n| *n == upper) {
        Some(i) => Ok(field.names_base() + i as u16),
        None if upper.contains(['L', 'W', '#', '?']) => Err(format!(
            "{text:?} is not supported (L, W, # and ? are not Vixie cron syntax)"
        )),
        None if field.names().is_empty() => Err(format!("{text:?} is not a number")),
        None => Err(format!(
            "{text:?} is neither a number nor a name ({}-{})",
            field.names()[0],
            field.names()[field.names().len() - 1]
        )),
    }
}
