//! The values of scalar fields that are more than a word: timeouts in seconds and retries.
//!
//! Durations are parsed and formatted with integers only: the component links no float
//! parsing or formatting (it was a fifth of a small component).

use std::time::Duration;

/// Default for `ring_timeout_secs` (Twilio's and Telnyx's default too).
pub const DEFAULT_RING_TIMEOUT_SECS: u32 = 30;
/// Longest `ring_timeout_secs` accepted.
pub const MAX_RING_TIMEOUT_SECS: u32 = 600;
/// Default for `max_destinations`.
pub const DEFAULT_MAX_DESTINATIONS: usize = 10;
/// Most `max_destinations` accepted.
pub const MAX_DESTINATIONS: usize = 32;
/// Default for `response_timeout_secs`.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest `response_timeout_secs` accepted.
pub const MIN_RESPONSE_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest `response_timeout_secs` accepted.
pub const MAX_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most `retries` accepted.
pub const MAX_RETRIES: u32 = 3;
/// Most `max_concurrent_calls` accepted.
pub const MAX_CONCURRENT_CALLS: u32 = 100_000;
/// Default for `breaker_failures`.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Most `breaker_failures` accepted.
pub const MAX_BREAKER_FAILURES: u32 = 1000;
/// Default for `breaker_cooldown_secs`.
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(5);
/// Shortest `breaker_cooldown_secs` accepted.
pub const MIN_BREAKER_COOLDOWN: Duration = Duration::from_millis(100);
/// Longest `breaker_cooldown_secs` accepted.
pub const MAX_BREAKER_COOLDOWN: Duration = Duration::from_secs(300);

/// Parse `ring_timeout_secs`: whole seconds from 1 to [`MAX_RING_TIMEOUT_SECS`].
pub fn parse_ring_timeout(value: &str) -> Result<u32, String> {
    whole_number(value, 1, MAX_RING_TIMEOUT_SECS, " of seconds")
}

/// Longest `remember_secs` accepted: 30 days.
pub const MAX_REMEMBER_SECS: u32 = 30 * 24 * 3600;

/// Default for `outcome_retry_hours`: a day.
pub const DEFAULT_OUTCOME_RETRY: Duration = Duration::from_secs(24 * 3600);
/// Shortest `outcome_retry_hours` accepted: 0.001 h, 3.6 s.
pub const MIN_OUTCOME_RETRY: Duration = Duration::from_millis(3600);
/// Longest `outcome_retry_hours` accepted: 30 days.
pub const MAX_OUTCOME_RETRY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parse `outcome_retry_hours`: decimal hours from 0.001 to 720, how long a host keeps trying
/// to deliver an outcome report.
pub fn parse_outcome_retry(value: &str) -> Result<Duration, String> {
    parse_seconds(value.trim())
        .and_then(|hours| hours.checked_mul(3600))
        .filter(|d| (MIN_OUTCOME_RETRY..=MAX_OUTCOME_RETRY).contains(d))
        .ok_or_else(|| format!("`{value}` is not a number of hours from 0.001 to 720"))
}

/// Parse `remember_secs`: whole seconds from 0 (remember nothing) to [`MAX_REMEMBER_SECS`].
pub fn parse_remember(value: &str) -> Result<Option<Duration>, String> {
    let secs = whole_number(value, 0, MAX_REMEMBER_SECS, " of seconds")?;
    Ok((secs > 0).then(|| Duration::from_secs(u64::from(secs))))
}

/// Parse `max_destinations`: a whole number from 1 to [`MAX_DESTINATIONS`].
pub fn parse_max_destinations(value: &str) -> Result<usize, String> {
    whole_number(value, 1, MAX_DESTINATIONS as u32, "").map(|n| n as usize)
}

/// Parse `response_timeout_secs`: decimal seconds from 0.1 to 60.
pub fn parse_response_timeout(value: &str) -> Result<Duration, String> {
    seconds_within(value, MIN_RESPONSE_TIMEOUT, MAX_RESPONSE_TIMEOUT)
}

/// Parse `retries`: a whole number from 0 to [`MAX_RETRIES`].
pub fn parse_retries(value: &str) -> Result<u32, String> {
    whole_number(value, 0, MAX_RETRIES, "")
}

/// Parse `max_concurrent_calls`: a whole number from 1 to [`MAX_CONCURRENT_CALLS`].
pub fn parse_max_concurrent_calls(value: &str) -> Result<u32, String> {
    whole_number(value, 1, MAX_CONCURRENT_CALLS, "")
}

/// Parse `breaker_failures`: a whole number from 0 (the breaker is off) to
/// [`MAX_BREAKER_FAILURES`].
pub fn parse_breaker_failures(value: &str) -> Result<u32, String> {
    whole_number(value, 0, MAX_BREAKER_FAILURES, "")
}

/// Parse `breaker_cooldown_secs`: decimal seconds from 0.1 to 300.
pub fn parse_breaker_cooldown(value: &str) -> Result<Duration, String> {
    seconds_within(value, MIN_BREAKER_COOLDOWN, MAX_BREAKER_COOLDOWN)
}

/// A whole number from `min` to `max` (`unit` says what of, in the error: " of seconds").
fn whole_number(value: &str, min: u32, max: u32, unit: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("`{value}` is not a whole number{unit} from {min} to {max}"))
}

/// Decimal seconds from `min` to `max`.
fn seconds_within(value: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    parse_seconds(value.trim())
        .filter(|d| (min..=max).contains(d))
        .ok_or_else(|| {
            format!(
                "`{value}` is not a number of seconds from {} to {}",
                format_seconds(min),
                format_seconds(max)
            )
        })
}

/// Decimal seconds (`5`, `2.5`, `.25`) to nanosecond precision.
fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0
        || fraction.len() > 9
        || !digits(whole)
        || !digits(fraction)
    {
        return None;
    }
    let secs = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let nanos = format!("{fraction:0<9}").parse().ok()?;
    Some(Duration::new(secs, nanos))
}

/// A duration as decimal seconds for messages, to the millisecond: `5`, `2.5`, `0.05`.
pub fn format_seconds(duration: Duration) -> String {
    let millis = duration.subsec_millis();
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}").trim_end_matches('0').to_owned()
    };
    format!("{}{fraction}", duration.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_retry_is_in_decimal_hours() {
        assert_eq!(parse_outcome_retry("24"), Ok(DEFAULT_OUTCOME_RETRY));
        assert_eq!(parse_outcome_retry("0.5"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_outcome_retry(".001"), Ok(MIN_OUTCOME_RETRY));
        for bad in ["0", "0.0001", "721", "-1", "1h", ""] {
            let err = parse_outcome_retry(bad).unwrap_err();
            assert!(err.contains("hours from 0.001 to 720"), "{bad}: {err}");
        }
    }

    #[test]
    fn response_timeouts_are_decimal_seconds() {
        for (text, millis) in [
            ("5", 5000),
            ("2.5", 2500),
            (" .25 ", 250),
            ("0.1", 100),
            ("60", 60_000),
            ("1.000000001", 1000),
        ] {
            let parsed = parse_response_timeout(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.as_millis(), millis, "{text}");
        }
        for text in [
            "",
            ".",
            "0.09",
            "60.001",
            "-1",
            "+5",
            "1e1",
            "NaN",
            "inf",
            "1.2.3",
            "1,5",
            "0.0000000001",
            "99999999999999999999",
        ] {
            let error = parse_response_timeout(text).unwrap_err();
            assert!(error.contains("from 0.1 to 60"), "{text}: {error}");
        }
        assert_eq!(format_seconds(Duration::from_millis(5000)), "5");
        assert_eq!(format_seconds(Duration::from_millis(2500)), "2.5");
        assert_eq!(format_seconds(Duration::from_millis(50)), "0.05");
        assert_eq!(format_seconds(Duration::from_micros(1_234_567)), "1.234");
    }

    #[test]
    fn service_settings_are_in_range() {
        assert_eq!(parse_max_concurrent_calls("200"), Ok(200));
        assert!(
            parse_max_concurrent_calls("0")
                .unwrap_err()
                .contains("from 1 to 100000")
        );
        assert_eq!(parse_breaker_failures("0"), Ok(0));
        assert!(parse_breaker_failures("1001").is_err());
        assert_eq!(
            parse_breaker_cooldown("0.5"),
            Ok(Duration::from_millis(500))
        );
        for bad in ["0.05", "301", "x"] {
            assert!(
                parse_breaker_cooldown(bad)
                    .unwrap_err()
                    .contains("from 0.1 to 300")
            );
        }
    }

    #[test]
    fn ring_timeouts_and_retries_are_whole_numbers_in_range() {
        assert_eq!(parse_ring_timeout(" 45 "), Ok(45));
        for bad in ["0", "601", "1.5", "-1", ""] {
            assert!(
                parse_ring_timeout(bad)
                    .unwrap_err()
                    .contains("from 1 to 600")
            );
        }
        assert_eq!(parse_retries("3"), Ok(3));
        for bad in ["4", "-1", "1.0", ""] {
            assert!(parse_retries(bad).unwrap_err().contains("from 0 to 3"));
        }
    }
}
