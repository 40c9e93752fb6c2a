//! The values of scalar fields that are more than a word: timeouts in seconds and retries.
//!
//! Durations are parsed and formatted with integers only: the component links no float
//! parsing or formatting (it was a fifth of a small component).

use std::time::Duration;

/// Default for `ring_timeout_secs` (Twilio's and Telnyx's default too).
pub const DEFAULT_RING_TIMEOUT_SECS: u32 = 30;
/// Longest `ring_timeout_secs` accepted.
pub const MAX_RING_TIMEOUT_SECS: u32 = 600;
/// Default for `response_timeout_secs`.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest `response_timeout_secs` accepted.
pub const MIN_RESPONSE_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest `response_timeout_secs` accepted.
pub const MAX_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most `retries` accepted.
pub const MAX_RETRIES: u32 = 3;

/// Parse `ring_timeout_secs`: whole seconds from 1 to [`MAX_RING_TIMEOUT_SECS`].
pub fn parse_ring_timeout(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|s| (1..=MAX_RING_TIMEOUT_SECS).contains(s))
        .ok_or_else(|| {
            format!("`{value}` is not a whole number of seconds from 1 to {MAX_RING_TIMEOUT_SECS}")
        })
}

/// Parse `response_timeout_secs`: decimal seconds from 0.1 to 60.
pub fn parse_response_timeout(value: &str) -> Result<Duration, String> {
    parse_seconds(value.trim())
        .filter(|d| (MIN_RESPONSE_TIMEOUT..=MAX_RESPONSE_TIMEOUT).contains(d))
        .ok_or_else(|| {
            format!(
                "`{value}` is not a number of seconds from {} to {}",
                format_seconds(MIN_RESPONSE_TIMEOUT),
                format_seconds(MAX_RESPONSE_TIMEOUT)
            )
        })
}

/// Parse `retries`: a whole number from 0 to [`MAX_RETRIES`].
pub fn parse_retries(value: &str) -> Result<u32, String> {
    value
        .parse::<u32>()
        .ok()
        .filter(|r| *r <= MAX_RETRIES)
        .ok_or_else(|| format!("`{value}` is not a whole number from 0 to {MAX_RETRIES}"))
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
