//! Instants as milliseconds since the Unix epoch: one portable integer column in SQLite and PostgreSQL, and
//! cheap to pass to the browser. Formatting is done here so server and portal print dates alike.

use serde::{Deserialize, Serialize};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Millis(pub i64);

impl Millis {
    pub fn plus_hours(self, hours: u32) -> Self {
        Self(self.0 + i64::from(hours) * 3_600_000)
    }
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0 + seconds * 1000)
    }

    /// `YYYY-MM-DD HH:MM UTC`, the format used everywhere in the portal.
    pub fn format_utc(self) -> String {
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
            rem / 3600,
            (rem % 3600) / 60
        )
    }

    /// `YYYY-MM-DD` (UTC), for dates such as a sunset date.
    pub fn format_date(self) -> String {
        let (y, m, d) = civil_from_days(self.0.div_euclid(86_400_000));
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// The start of the calendar month (UTC) this instant falls in: monthly quotas reset there.
    pub fn month_start(self) -> Self {
        let (y, m, _) = civil_from_days(self.0.div_euclid(86_400_000));
        Self(days_from_civil(y, m, 1) * 86_400_000)
    }

    /// Parses `YYYY-MM-DD` (start of that day, UTC), as sent by date inputs.
    pub fn parse_date(s: &str) -> Option<Self> {
        let mut parts = s.trim().splitn(3, '-');
        let y: i64 = parts.next()?.parse().ok()?;
        let m: u32 = parts.next()?.parse().ok()?;
        let d: u32 = parts.next()?.parse().ok()?;
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        Some(Self(days_from_civil(y, m, d) * 86_400_000))
    }
}

// Howard Hinnant's civil calendar algorithms (public domain): exact for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(Millis(0).format_utc(), "1970-01-01 00:00 UTC");
        // 2026-11-25 06:03:00 UTC
        assert_eq!(
            Millis(1_795_586_580_000).format_utc(),
            "2026-11-25 06:03 UTC"
        );
        assert_eq!(Millis(951_782_400_000).format_utc(), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn parses_dates_back_to_the_same_day() {
        let d = Millis::parse_date("2026-11-25").unwrap_or_default();
        assert_eq!(d.format_utc(), "2026-11-25 00:00 UTC");
        assert_eq!(Millis::parse_date("2026-13-01"), None);
        assert_eq!(Millis::parse_date("yesterday"), None);
    }
}
