//! Wall-clock helpers: RFC 3339 timestamps (as Kubernetes writes them) and ages.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Seconds since the Unix epoch, now.
pub fn now_seconds() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The seconds RFC 3339 can write: years 0000 to 9999.
const FIRST_SECOND: i64 = -62_167_219_200;
const LAST_SECOND: i64 = 253_402_300_799;

/// `2026-11-27T16:27:00Z` for `seconds` since the epoch (UTC), as Kubernetes writes
/// `creationTimestamp`; clamped to years 0000–9999.
pub fn rfc3339(seconds: i64) -> String {
    let seconds = seconds.clamp(FIRST_SECOND, LAST_SECOND);
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses an RFC 3339 timestamp (`2026-11-27T16:27:00Z`, fractions and offsets allowed;
/// a timestamp without an offset is read as UTC) to epoch seconds; None if malformed.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let local = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(s, local).ok().map(|t| t.assume_utc().unix_timestamp())
}

/// kubectl's short age: `5s`, `3m`, `2h`, `4d`.
pub fn age(created: Option<&str>) -> String {
    age_at(created, now_seconds())
}

/// [`age`] of a creation timestamp already parsed ([`parse_rfc3339`]; None: `<unknown>`).
pub fn age_since(created: Option<i64>) -> String {
    age_of(created, now_seconds())
}

/// [`age`] at `now` (epoch seconds).
fn age_at(created: Option<&str>, now: i64) -> String {
    age_of(created.and_then(parse_rfc3339), now)
}

/// [`age_since`] at `now` (epoch seconds).
fn age_of(created: Option<i64>, now: i64) -> String {
    let Some(created) = created else {
        return "<unknown>".to_owned();
    };
    let age = time::Duration::seconds(now.saturating_sub(created).max(0));
    match age.whole_seconds() {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", age.whole_minutes()),
        s if s < 172_800 => format!("{}h", age.whole_hours()),
        _ => format!("{}d", age.whole_days()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_796_820), "2026-11-27T16:27:00Z");
        assert_eq!(parse_rfc3339("2026-11-27T16:27:00Z"), Some(1_795_796_820));
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn parses_fractions_offsets_and_rejects_garbage() {
        assert_eq!(parse_rfc3339("2026-11-27T16:27:00.123456Z"), Some(1_795_796_820));
        assert_eq!(parse_rfc3339("2026-11-27T17:27:00+01:00"), Some(1_795_796_820));
        assert_eq!(parse_rfc3339("2026-11-27T16:27:00"), Some(1_795_796_820));
        for bad in ["", "2026-13-01T00:00:00Z", "2026-11-27 16:27", "2026-11-27T16:27:00Zjunk", "\u{e9}\u{e9}"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339(&rfc3339(1_234_567_890)), Some(1_234_567_890));
    }

    #[test]
    fn ages_print_like_kubectl() {
        let created = rfc3339(1_000_000);
        let at = |elapsed: i64| age_at(Some(&created), 1_000_000 + elapsed);
        assert_eq!(at(-5), "0s");
        assert_eq!(at(5), "5s");
        assert_eq!(at(119), "119s");
        assert_eq!(at(120), "2m");
        assert_eq!(at(7199), "119m");
        assert_eq!(at(7200), "2h");
        assert_eq!(at(172_799), "47h");
        assert_eq!(at(172_800), "2d");
        assert_eq!(age_at(None, 0), "<unknown>");
        assert_eq!(age_at(Some("garbage"), 0), "<unknown>");
        assert_eq!(age_at(Some(&created), i64::MIN), "0s");
    }
}
