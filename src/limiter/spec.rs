//! Rate-limit strings as users of the Python `limits` library (and slowapi) write them.
//!
//! A limit says how many requests are allowed per period: `"10/second"`, `"100 per minute"`,
//! `"5/2 hours"`, `"10 per 5 seconds"`. Several limits can be given in one string, separated by `;`,
//! `,` or `|`: `"10/second; 1000/day"`. The grammar, with whitespace allowed anywhere between the
//! parts and the keywords matched case-insensitively:
//!
//! ```text
//! limits     = limit { separator limit }          separator = ";" | "," | "|"
//! limit      = count ( "/" | "per" ) [ multiplier ] unit
//! count      = digit { digit }                    at least 1
//! multiplier = digit { digit }                    at least 1; 1 when left out
//! unit       = ( "second" | "minute" | "hour" | "day" | "month" | "year" ) [ "s" ]
//! ```
//!
//! The units are those of `limits`: a month is 30 days and a year is 12 months (360 days). Empty
//! parts of a multi-limit string (a trailing `;`, say) are ignored.
//!
//! ```
//! use seawall::clock::NANOS_PER_SEC;
//! use seawall::limiter::spec::{parse_limits, LimitSpec};
//!
//! let limits = parse_limits("10/second; 100 per 5 MINUTES;").unwrap();
//! assert_eq!(limits[0], LimitSpec { count: 10, period: NANOS_PER_SEC });
//! assert_eq!(limits[1].count, 100);
//! assert_eq!(limits[1].period_secs(), 300);
//! assert_eq!(limits[1].to_string(), "100/5 minutes");
//!
//! let e = parse_limits("10/second; 10/fortnight").unwrap_err();
//! assert!(e.to_string().starts_with("limit '10/fortnight' has an unknown unit 'fortnight'"));
//! ```

use std::fmt;
use std::str::FromStr;

use crate::clock::{Nanos, NANOS_PER_SEC};
use crate::error::Error;

/// The units, largest first, with their length in seconds (those of `limits`).
const UNITS: [(&str, u64); 6] = [
    ("year", 12 * 30 * 86_400),
    ("month", 30 * 86_400),
    ("day", 86_400),
    ("hour", 3_600),
    ("minute", 60),
    ("second", 1),
];

/// What the unit may be, for error messages.
const UNITS_HELP: &str = "second, minute, hour, day, month or year, singular or plural";

/// What separates the limits of a multi-limit string.
const SEPARATORS: [char; 3] = [';', ',', '|'];

/// One parsed limit: at most `count` per `period`.
///
/// ```
/// use seawall::clock::NANOS_PER_SEC;
/// use seawall::limiter::spec::LimitSpec;
///
/// let spec = LimitSpec::parse("5 per 2 hours").unwrap();
/// assert_eq!(spec, LimitSpec { count: 5, period: 2 * 3600 * NANOS_PER_SEC });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitSpec {
    /// Requests (cost units) allowed per period; at least 1.
    pub count: u64,
    /// The period in nanoseconds; at least one second.
    pub period: Nanos,
}

impl LimitSpec {
    /// Parses one limit such as "10/second" or "5 per 2 hours".
    ///
    /// Whitespace around and between the parts is ignored, and the unit and `per` may be in any
    /// case. A string holding several limits (with `;`, `,` or `|`) is an error here; use
    /// [`parse_limits`] for those.
    ///
    /// ```
    /// use seawall::limiter::spec::LimitSpec;
    ///
    /// let spec = LimitSpec::parse("  100 PER Minute ").unwrap();
    /// assert_eq!((spec.count, spec.period_secs()), (100, 60));
    /// assert_eq!(LimitSpec::parse("5/2 hours").unwrap().period_secs(), 7200);
    ///
    /// let e = LimitSpec::parse("ten/second").unwrap_err();
    /// assert_eq!(
    ///     e.to_string(),
    ///     "limit 'ten/second' has an invalid count 'ten' (expected a whole number of at least 1)"
    /// );
    /// ```
    pub fn parse(text: &str) -> Result<LimitSpec, Error> {
        let limit = text.trim();
        let fail = |what: String| Error::invalid("limit", format!("'{limit}' {what}"));

        if limit.is_empty() {
            return Err(fail(
                "is empty (expected e.g. '10/second' or '100 per minute')".to_string(),
            ));
        }
        if let Some(sep) = limit.chars().find(|c| SEPARATORS.contains(c)) {
            return Err(fail(format!(
                "contains '{sep}', which separates several limits \
                 (expected a single limit such as '10/second')"
            )));
        }
        let Some((count_text, sep, period_text)) = split_at_keyword(limit) else {
            return Err(fail(
                "is missing '/' or 'per' between the count and the period \
                 (expected e.g. '10/second' or '10 per minute')"
                    .to_string(),
            ));
        };

        let count_text = count_text.trim();
        let count = match parse_number(count_text) {
            Ok(count) => count,
            Err(_) if count_text.is_empty() => {
                return Err(fail(format!(
                    "is missing a count before '{sep}' \
                     (expected a whole number of at least 1, as in '10/second')"
                )))
            }
            Err(NumberError::Invalid) => {
                return Err(fail(format!(
                    "has an invalid count '{count_text}' (expected a whole number of at least 1)"
                )))
            }
            Err(NumberError::Zero) => {
                return Err(fail(format!(
                    "has a zero count '{count_text}' (expected a whole number of at least 1)"
                )))
            }
            Err(NumberError::TooLarge) => {
                return Err(fail(format!(
                    "has a count '{count_text}' that is too large (at most {})",
                    u64::MAX
                )))
            }
        };

        let period_text = period_text.trim();
        if period_text.is_empty() {
            return Err(fail(format!(
                "is missing a unit after '{sep}' (expected {UNITS_HELP})"
            )));
        }
        // The multiplier runs up to the first letter or whitespace, so that "1.5 hours" and
        // "-2 hours" are reported as bad multipliers rather than as unknown units.
        let unit_start = period_text
            .find(|c: char| c.is_ascii_alphabetic() || c.is_whitespace())
            .unwrap_or(period_text.len());
        let (multiplier_text, unit_text) = period_text.split_at(unit_start);
        let unit_text = unit_text.trim();
        // `None` when the multiplier overflows a u64: reported below as a period too long, once the
        // unit is known to be valid.
        let multiplier = if multiplier_text.is_empty() {
            Some(1)
        } else {
            match parse_number(multiplier_text) {
                Ok(multiplier) => Some(multiplier),
                Err(NumberError::TooLarge) => None,
                Err(NumberError::Invalid) => {
                    return Err(fail(format!(
                        "has an invalid multiplier '{multiplier_text}' \
                         (expected a whole number of at least 1, as in '5/2 hours')"
                    )))
                }
                Err(NumberError::Zero) => {
                    return Err(fail(format!(
                        "has a zero multiplier '{multiplier_text}' \
                         (expected a whole number of at least 1, as in '5/2 hours')"
                    )))
                }
            }
        };

        if unit_text.is_empty() {
            return Err(fail(format!(
                "is missing a unit after the multiplier '{multiplier_text}' (expected {UNITS_HELP})"
            )));
        }
        let Some((unit_name, unit_secs)) = find_unit(unit_text) else {
            return Err(fail(format!(
                "has an unknown unit '{unit_text}' (expected {UNITS_HELP})"
            )));
        };

        let period = multiplier
            .and_then(|m| m.checked_mul(unit_secs))
            .and_then(|secs| secs.checked_mul(NANOS_PER_SEC));
        match period {
            Some(period) => Ok(LimitSpec { count, period }),
            None => Err(fail(format!(
                "has a period '{period_text}' that is too long (at most {} {unit_name}s)",
                u64::MAX / NANOS_PER_SEC / unit_secs
            ))),
        }
    }

    /// The period in whole seconds (periods are whole seconds by construction).
    ///
    /// A hand-built spec whose period is not a whole number of seconds is rounded down.
    ///
    /// ```
    /// use seawall::limiter::spec::LimitSpec;
    ///
    /// assert_eq!(LimitSpec::parse("1000/day").unwrap().period_secs(), 86_400);
    /// assert_eq!(LimitSpec::parse("1/year").unwrap().period_secs(), 360 * 86_400);
    /// ```
    pub fn period_secs(&self) -> u64 {
        self.period / NANOS_PER_SEC
    }
}

/// The canonical form: the count, `/`, the multiplier only when it is not 1, and the largest unit
/// that divides the period exactly, singular when the multiplier is 1 and plural otherwise.
/// Parsing it gives back the same spec.
///
/// A hand-built spec whose period is not a positive whole number of seconds has no canonical form;
/// it is shown as `"{count}/{period} nanoseconds"`, which does not parse.
///
/// ```
/// use seawall::limiter::spec::LimitSpec;
///
/// let show = |s: &str| LimitSpec::parse(s).unwrap().to_string();
/// assert_eq!(show("10 per 1 second"), "10/second");
/// assert_eq!(show("5 per 120 MINUTES"), "5/2 hours");
/// assert_eq!(show("3/10 seconds"), "3/10 seconds");
/// assert_eq!(show("1/12 months"), "1/year");
/// ```
impl fmt::Display for LimitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period_secs();
        // Only a positive whole number of seconds has a canonical form.
        if secs == 0 || secs * NANOS_PER_SEC != self.period {
            return write!(f, "{}/{} nanoseconds", self.count, self.period);
        }
        let (name, unit_secs) = UNITS
            .iter()
            .copied()
            .find(|&(_, unit_secs)| secs / unit_secs * unit_secs == secs)
            .unwrap_or(("second", 1));
        match secs / unit_secs {
            1 => write!(f, "{}/{name}", self.count),
            multiplier => write!(f, "{}/{multiplier} {name}s", self.count),
        }
    }
}

/// The same as [`LimitSpec::parse`].
///
/// ```
/// use seawall::limiter::spec::LimitSpec;
///
/// let spec: LimitSpec = "10 per 5 seconds".parse().unwrap();
/// assert_eq!((spec.count, spec.period_secs()), (10, 5));
/// assert!("10/fortnight".parse::<LimitSpec>().is_err());
/// ```
impl FromStr for LimitSpec {
    type Err = Error;

    fn from_str(text: &str) -> Result<LimitSpec, Error> {
        LimitSpec::parse(text)
    }
}

/// Parses one or more limits separated by `;`, `,` or `|`. Empty parts (e.g. a trailing `;`) are ignored; no limit at all is an error.
///
/// The limits come back in the order written. An error quotes the part that is wrong.
///
/// ```
/// use seawall::limiter::spec::parse_limits;
///
/// let limits = parse_limits("10/second, 100/minute | 1000 per day;").unwrap();
/// let secs: Vec<u64> = limits.iter().map(|l| l.period_secs()).collect();
/// assert_eq!(secs, [1, 60, 86_400]);
///
/// assert!(parse_limits(" ; ").is_err());
/// let e = parse_limits("10/second; 0/minute").unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "limit '0/minute' has a zero count '0' (expected a whole number of at least 1)"
/// );
/// ```
pub fn parse_limits(text: &str) -> Result<Vec<LimitSpec>, Error> {
    let mut limits = Vec::new();
    for part in text.split(SEPARATORS).map(str::trim) {
        if part.is_empty() {
            continue;
        }
        // "1,000/day" splits into "1" and "000/day"; say why rather than only that "1" lacks a unit.
        if text.contains(',') && part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                "limit",
                format!(
                    "'{part}' is missing '/' or 'per' between the count and the period \
                     (expected e.g. '10/second'; note that ',' separates limits, \
                     so write '1000/day' rather than '1,000/day')"
                ),
            ));
        }
        limits.push(LimitSpec::parse(part)?);
    }
    if limits.is_empty() {
        return Err(Error::invalid(
            "limit",
            format!(
                "'{}' contains no limit (expected e.g. '10/second', \
                 or several separated by ';' as in '10/second; 1000/day')",
                text.trim()
            ),
        ));
    }
    Ok(limits)
}

/// Splits a limit at its first `/` or, failing that, at its first `per` (in any case): the text
/// before, the keyword as written, and the text after.
fn split_at_keyword(limit: &str) -> Option<(&str, &str, &str)> {
    let at = match limit.find('/') {
        Some(at) => (at, 1),
        // No unit contains "per", so its first occurrence is the keyword. Being ASCII, a match
        // starts and ends on char boundaries.
        None => (
            limit
                .as_bytes()
                .windows(3)
                .position(|w| w.eq_ignore_ascii_case(b"per"))?,
            3,
        ),
    };
    let (start, len) = at;
    Some((
        &limit[..start],
        &limit[start..start + len],
        &limit[start + len..],
    ))
}

/// Why a count or multiplier is not a whole number of at least 1.
enum NumberError {
    /// Empty, or not only ASCII digits (a sign, a point, a letter...).
    Invalid,
    /// Zero.
    Zero,
    /// More than `u64::MAX`.
    TooLarge,
}

/// Parses a whole number of at least 1 written with ASCII digits only.
fn parse_number(text: &str) -> Result<u64, NumberError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::Invalid);
    }
    // Only digits, so parsing fails only on overflow.
    match text.parse::<u64>() {
        Ok(0) => Err(NumberError::Zero),
        Ok(n) => Ok(n),
        Err(_) => Err(NumberError::TooLarge),
    }
}

/// The unit `word` names, singular or plural in any case, with its length in seconds.
fn find_unit(word: &str) -> Option<(&'static str, u64)> {
    let singular = word.strip_suffix(['s', 'S']).unwrap_or(word);
    UNITS
        .iter()
        .copied()
        .find(|(name, _)| word.eq_ignore_ascii_case(name) || singular.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Nanos = NANOS_PER_SEC;
    const MINUTE: u64 = 60;
    const HOUR: u64 = 3_600;
    const DAY: u64 = 86_400;
    const MONTH: u64 = 30 * DAY;
    const YEAR: u64 = 12 * MONTH;

    fn spec(count: u64, secs: u64) -> LimitSpec {
        LimitSpec {
            count,
            period: secs * S,
        }
    }

    fn ok(text: &str) -> LimitSpec {
        LimitSpec::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn err(text: &str) -> String {
        match LimitSpec::parse(text) {
            Ok(spec) => panic!("{text:?} should not parse, got {spec:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(ok("10/second"), spec(10, 1));
        assert_eq!(ok("100 per minute"), spec(100, MINUTE));
        assert_eq!(ok("5/2 hours"), spec(5, 2 * HOUR));
        assert_eq!(ok("1000/day"), spec(1000, DAY));
        assert_eq!(ok("10 per 5 seconds"), spec(10, 5));
        assert_eq!(ok("7/month"), spec(7, MONTH));
        assert_eq!(ok("7/year"), spec(7, YEAR));
        assert_eq!(ok("1/3 days"), spec(1, 3 * DAY));
    }

    #[test]
    fn units_have_the_lengths_of_limits() {
        assert_eq!(ok("1/second").period, S);
        assert_eq!(ok("1/minute").period, 60 * S);
        assert_eq!(ok("1/hour").period, 3_600 * S);
        assert_eq!(ok("1/day").period, 86_400 * S);
        assert_eq!(ok("1/month").period, 2_592_000 * S);
        assert_eq!(ok("1/year").period, 31_104_000 * S);
        assert_eq!(ok("1/year"), ok("1/12 months"));
        assert_eq!(ok("1/month"), ok("1/30 days"));
    }

    #[test]
    fn singular_and_plural_either_way() {
        for unit in ["second", "minute", "hour", "day", "month", "year"] {
            let (_, secs) = find_unit(unit).unwrap();
            assert_eq!(ok(&format!("3/{unit}")), spec(3, secs));
            assert_eq!(ok(&format!("3/{unit}s")), spec(3, secs));
            assert_eq!(ok(&format!("3/1 {unit}")), spec(3, secs));
            assert_eq!(ok(&format!("3/4 {unit}")), spec(3, 4 * secs));
            assert_eq!(ok(&format!("3 per 4 {unit}s")), spec(3, 4 * secs));
        }
    }

    #[test]
    fn whitespace_and_case_do_not_matter() {
        let expected = spec(10, 5);
        for text in [
            "10/5 seconds",
            "  10/5 seconds  ",
            "10 / 5 seconds",
            "10/5seconds",
            "10/ 5   seconds",
            "\t10\t/\t5\tseconds\n",
            "10 PER 5 SECONDS",
            "10 Per 5 Seconds",
            "10per5seconds",
            "10 per5 SeCoNdS",
            "10per 5 seconds",
            "\u{a0}10 per 5 seconds\u{2003}",
        ] {
            assert_eq!(ok(text), expected, "{text:?}");
        }
        assert_eq!(ok("10persecond"), spec(10, 1));
        assert_eq!(ok("10 per second"), spec(10, 1));
        assert_eq!(ok("10 pEr HOUR"), spec(10, HOUR));
    }

    #[test]
    fn leading_zeros_are_fine() {
        assert_eq!(ok("007/02 hours"), spec(7, 2 * HOUR));
        assert_eq!(ok("01/01 second"), spec(1, 1));
    }

    #[test]
    fn extremes_that_fit() {
        assert_eq!(ok(&format!("{}/second", u64::MAX)).count, u64::MAX);
        let max_secs = u64::MAX / S;
        assert_eq!(ok(&format!("1/{max_secs} seconds")), spec(1, max_secs));
        assert_eq!(ok("1/593 years"), spec(1, 593 * YEAR));
    }

    #[test]
    fn unknown_unit() {
        assert_eq!(
            err("10/fortnight"),
            "limit '10/fortnight' has an unknown unit 'fortnight' \
             (expected second, minute, hour, day, month or year, singular or plural)"
        );
        assert_eq!(
            err("10/2 weeks"),
            "limit '10/2 weeks' has an unknown unit 'weeks' \
             (expected second, minute, hour, day, month or year, singular or plural)"
        );
        for text in [
            "10/sec",
            "10/s",
            "10/secondss",
            "10/2 2 hours",
            "10/hour extra",
            "10/sëcond",
            "10 per second per minute",
        ] {
            assert!(err(text).contains("has an unknown unit"), "{text:?}");
        }
        assert!(err("10/hour per minute").contains("unknown unit 'hour per minute'"));
    }

    #[test]
    fn invalid_count() {
        assert_eq!(
            err("ten/second"),
            "limit 'ten/second' has an invalid count 'ten' (expected a whole number of at least 1)"
        );
        for (text, count) in [
            ("-5/second", "-5"),
            ("+5/second", "+5"),
            ("1.5/second", "1.5"),
            ("1 0/second", "1 0"),
            ("1e3/second", "1e3"),
            ("５/second", "５"),
            ("ten per second", "ten"),
        ] {
            assert!(
                err(text).contains(&format!("has an invalid count '{count}'")),
                "{text:?}: {}",
                err(text)
            );
        }
    }

    #[test]
    fn zero_count() {
        assert_eq!(
            err("0/second"),
            "limit '0/second' has a zero count '0' (expected a whole number of at least 1)"
        );
        assert!(err("000 per day").contains("zero count '000'"));
    }

    #[test]
    fn count_too_large() {
        assert_eq!(
            err("18446744073709551616/second"),
            "limit '18446744073709551616/second' has a count '18446744073709551616' \
             that is too large (at most 18446744073709551615)"
        );
        assert!(err(&format!("{}/second", "9".repeat(100))).contains("too large"));
    }

    #[test]
    fn missing_parts() {
        assert_eq!(
            err("/second"),
            "limit '/second' is missing a count before '/' \
             (expected a whole number of at least 1, as in '10/second')"
        );
        assert!(err("per minute").contains("is missing a count before 'per'"));
        assert!(err(" PER minute").contains("is missing a count before 'PER'"));
        assert_eq!(
            err("10 second"),
            "limit '10 second' is missing '/' or 'per' between the count and the period \
             (expected e.g. '10/second' or '10 per minute')"
        );
        assert!(err("10").contains("is missing '/' or 'per'"));
        assert!(err("second").contains("is missing '/' or 'per'"));
        assert_eq!(
            err("10/"),
            "limit '10/' is missing a unit after '/' \
             (expected second, minute, hour, day, month or year, singular or plural)"
        );
        assert!(err("10 per ").contains("limit '10 per' is missing a unit after 'per'"));
        assert_eq!(
            err("10/5"),
            "limit '10/5' is missing a unit after the multiplier '5' \
             (expected second, minute, hour, day, month or year, singular or plural)"
        );
        assert!(err("/").contains("is missing a count"));
    }

    #[test]
    fn empty() {
        assert_eq!(
            err(""),
            "limit '' is empty (expected e.g. '10/second' or '100 per minute')"
        );
        assert_eq!(
            err(" \t\n"),
            "limit '' is empty (expected e.g. '10/second' or '100 per minute')"
        );
    }

    #[test]
    fn invalid_multiplier() {
        assert_eq!(
            err("10/0 seconds"),
            "limit '10/0 seconds' has a zero multiplier '0' \
             (expected a whole number of at least 1, as in '5/2 hours')"
        );
        assert_eq!(
            err("10/1.5 hours"),
            "limit '10/1.5 hours' has an invalid multiplier '1.5' \
             (expected a whole number of at least 1, as in '5/2 hours')"
        );
        assert!(err("10/-2 hours").contains("invalid multiplier '-2'"));
        assert!(err("10/+2 hours").contains("invalid multiplier '+2'"));
        assert!(err("10/½hour").contains("invalid multiplier '½'"));
        assert!(err("10 per 00 days").contains("zero multiplier '00'"));
    }

    #[test]
    fn period_too_long() {
        assert_eq!(
            err("1/594 years"),
            "limit '1/594 years' has a period '594 years' that is too long (at most 593 years)"
        );
        let max_secs = u64::MAX / S;
        assert_eq!(
            err(&format!("1/{} seconds", max_secs + 1)),
            format!(
                "limit '1/{} seconds' has a period '{} seconds' \
                 that is too long (at most {max_secs} seconds)",
                max_secs + 1,
                max_secs + 1
            )
        );
        // A multiplier too large even for a u64 is reported the same way.
        assert!(err("1/99999999999999999999999 hours").contains(
            "period '99999999999999999999999 hours' that is too long (at most 5124095 hours)"
        ));
        // ...unless the unit is wrong too, which is the more useful thing to say.
        assert!(err("1/99999999999999999999999 weeks").contains("unknown unit 'weeks'"));
    }

    #[test]
    fn several_limits_need_parse_limits() {
        assert_eq!(
            err("10/second; 100/minute"),
            "limit '10/second; 100/minute' contains ';', which separates several limits \
             (expected a single limit such as '10/second')"
        );
        assert!(err("10/second,").contains("contains ','"));
        assert!(err("10/second|").contains("contains '|'"));
    }

    #[test]
    fn from_str_is_parse() {
        assert_eq!("5 per 2 hours".parse::<LimitSpec>(), Ok(spec(5, 2 * HOUR)));
        assert_eq!(
            "ten/second".parse::<LimitSpec>(),
            LimitSpec::parse("ten/second")
        );
    }

    #[test]
    fn period_secs() {
        assert_eq!(ok("5/2 hours").period_secs(), 7_200);
        assert_eq!(ok("1/year").period_secs(), YEAR);
        let odd = LimitSpec {
            count: 1,
            period: 1_500_000_000,
        };
        assert_eq!(odd.period_secs(), 1);
    }

    #[test]
    fn parse_limits_splits_on_every_separator() {
        let expected = vec![spec(10, 1), spec(100, MINUTE), spec(1000, DAY)];
        for text in [
            "10/second;100/minute;1000/day",
            "10/second; 100 per minute; 1000/day",
            "10/second, 100/minute, 1000/day",
            "10/second|100/minute|1000/day",
            " 10/second ;100/minute , 1000/day | ",
            "10/second;;100/minute;;;1000/day;",
            ";10/second;100/minute;1000/day",
            "10/SECOND | 100 PER MINUTE , 1000 Per Day ;",
        ] {
            assert_eq!(parse_limits(text).unwrap(), expected, "{text:?}");
        }
        assert_eq!(parse_limits("5/2 hours").unwrap(), vec![spec(5, 2 * HOUR)]);
        // Order is kept, and duplicates too.
        assert_eq!(
            parse_limits("1/day;1/second;1/day").unwrap(),
            vec![spec(1, DAY), spec(1, 1), spec(1, DAY)]
        );
    }

    #[test]
    fn parse_limits_needs_a_limit() {
        for text in ["", "   ", ";", " ; , | ", ";;;"] {
            let e = parse_limits(text).unwrap_err().to_string();
            assert!(e.contains("contains no limit"), "{text:?}: {e}");
        }
        assert_eq!(
            parse_limits(" ; ").unwrap_err().to_string(),
            "limit ';' contains no limit (expected e.g. '10/second', \
             or several separated by ';' as in '10/second; 1000/day')"
        );
    }

    #[test]
    fn parse_limits_quotes_the_bad_part() {
        assert_eq!(
            parse_limits("10/second; 10/fortnight ;1/day")
                .unwrap_err()
                .to_string(),
            "limit '10/fortnight' has an unknown unit 'fortnight' \
             (expected second, minute, hour, day, month or year, singular or plural)"
        );
        assert_eq!(
            parse_limits("ten/second|1/day").unwrap_err().to_string(),
            "limit 'ten/second' has an invalid count 'ten' (expected a whole number of at least 1)"
        );
        assert!(parse_limits("1/day, 10/0 hours")
            .unwrap_err()
            .to_string()
            .starts_with("limit '10/0 hours' has a zero multiplier"));
    }

    #[test]
    fn parse_limits_explains_thousands_separators() {
        let e = parse_limits("1,000/day").unwrap_err().to_string();
        assert_eq!(
            e,
            "limit '1' is missing '/' or 'per' between the count and the period \
             (expected e.g. '10/second'; note that ',' separates limits, \
             so write '1000/day' rather than '1,000/day')"
        );
        // Without a comma there is nothing to explain.
        let e = parse_limits("10/second; 5").unwrap_err().to_string();
        assert_eq!(
            e,
            "limit '5' is missing '/' or 'per' between the count and the period \
             (expected e.g. '10/second' or '10 per minute')"
        );
    }

    #[test]
    fn display_is_canonical() {
        for (text, shown) in [
            ("10/second", "10/second"),
            ("10/seconds", "10/second"),
            ("10 per 1 second", "10/second"),
            ("5/2 hours", "5/2 hours"),
            ("5/2 hour", "5/2 hours"),
            ("1000/day", "1000/day"),
            ("3/10 seconds", "3/10 seconds"),
            ("3 PER 90 SECONDS", "3/90 seconds"),
            ("3/120 seconds", "3/2 minutes"),
            ("1/60 minutes", "1/hour"),
            ("1/24 hours", "1/day"),
            ("1/48 hours", "1/2 days"),
            ("1/36 hours", "1/36 hours"),
            ("1/30 days", "1/month"),
            ("1/31 days", "1/31 days"),
            ("1/60 days", "1/2 months"),
            ("1/360 days", "1/year"),
            ("1/365 days", "1/365 days"),
            ("1/12 months", "1/year"),
            ("1/24 months", "1/2 years"),
            ("1/18 months", "1/18 months"),
        ] {
            assert_eq!(ok(text).to_string(), shown, "{text:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "10/second",
            "100 per minute",
            "5/2 hours",
            "1000/day",
            "10 per 5 seconds",
            "1/year",
            "1/593 years",
            "7/13 months",
            "18446744073709551615/18446744073 seconds",
        ] {
            let spec = ok(text);
            assert_eq!(ok(&spec.to_string()), spec, "{text:?}");
        }
    }

    #[test]
    fn display_of_hand_built_specs_does_not_panic() {
        let odd = LimitSpec {
            count: 2,
            period: 1_500_000_000,
        };
        assert_eq!(odd.to_string(), "2/1500000000 nanoseconds");
        assert!(LimitSpec::parse(&odd.to_string()).is_err());
        let zero = LimitSpec {
            count: 0,
            period: 0,
        };
        assert_eq!(zero.to_string(), "0/0 nanoseconds");
        let max = LimitSpec {
            count: u64::MAX,
            period: u64::MAX,
        };
        assert_eq!(
            max.to_string(),
            "18446744073709551615/18446744073709551615 nanoseconds"
        );
    }

    /// Applies upper case to the letters of `text` whose bit in `mask` is set.
    fn with_case(text: &str, mask: u64) -> String {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    fn space() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "", " ", "  ", "\t", " \t "])
    }

    /// Checks what every successfully parsed spec promises.
    fn check_parsed(spec: &LimitSpec) -> Result<(), TestCaseError> {
        prop_assert!(spec.count >= 1);
        prop_assert!(spec.period >= S);
        prop_assert_eq!(spec.period % S, 0);
        prop_assert_eq!(LimitSpec::parse(&spec.to_string()), Ok(*spec));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn any_spelling_parses_to_the_same_spec(
            count in 1u64..1_000_000,
            multiplier in 1u64..100,
            unit in 0usize..UNITS.len(),
            zeros in 0usize..3,
            per in any::<bool>(),
            show_one in any::<bool>(),
            plural in any::<bool>(),
            mask in any::<u64>(),
            spaces in proptest::collection::vec(space(), 5),
        ) {
            let (name, secs) = UNITS[unit];
            let keyword = if per { "per" } else { "/" };
            let multiplier_text = if multiplier == 1 && !show_one {
                String::new()
            } else {
                multiplier.to_string()
            };
            let suffix = if plural { "s" } else { "" };
            let text = with_case(
                &format!(
                    "{}{}{count}{}{keyword}{}{multiplier_text}{}{name}{suffix}{}",
                    spaces[0],
                    "0".repeat(zeros),
                    spaces[1],
                    spaces[2],
                    spaces[3],
                    spaces[4],
                ),
                mask,
            );
            let expected = LimitSpec { count, period: multiplier * secs * S };
            prop_assert_eq!(LimitSpec::parse(&text), Ok(expected), "{:?}", text);
            prop_assert_eq!(text.parse::<LimitSpec>(), Ok(expected));
            prop_assert_eq!(parse_limits(&text), Ok(vec![expected]));
            prop_assert_eq!(LimitSpec::parse(&expected.to_string()), Ok(expected));
        }

        #[test]
        fn several_limits_parse_in_order(
            limits in proptest::collection::vec((1u64..1_000_000, 1u64..100, 0usize..UNITS.len()), 1..6),
            separators in proptest::collection::vec(prop::sample::select(vec![";", ",", "|", " ; ", ";;", " | "]), 6),
            trailing in any::<bool>(),
        ) {
            let expected: Vec<LimitSpec> = limits
                .iter()
                .map(|&(count, multiplier, unit)| LimitSpec { count, period: multiplier * UNITS[unit].1 * S })
                .collect();
            let mut text = String::new();
            for (i, spec) in expected.iter().enumerate() {
                if i > 0 {
                    text.push_str(separators[i]);
                }
                text.push_str(&spec.to_string());
            }
            if trailing {
                text.push_str(separators[0]);
            }
            prop_assert_eq!(parse_limits(&text), Ok(expected), "{:?}", text);
        }

        #[test]
        fn display_round_trips_for_any_whole_second_period(
            count in 1u64..=u64::MAX,
            secs in 1u64..=u64::MAX / S,
        ) {
            let spec = LimitSpec { count, period: secs * S };
            prop_assert_eq!(LimitSpec::parse(&spec.to_string()), Ok(spec));
        }

        #[test]
        fn display_round_trips_for_round_periods(
            count in 1u64..=u64::MAX,
            multiplier in 1u64..=593, // 593 years is the longest period that fits
            unit in 0usize..UNITS.len(),
        ) {
            let spec = LimitSpec { count, period: multiplier * UNITS[unit].1 * S };
            prop_assert_eq!(LimitSpec::parse(&spec.to_string()), Ok(spec));
        }

        #[test]
        fn never_panics_on_any_string(text in ".*") {
            if let Ok(spec) = LimitSpec::parse(&text) {
                check_parsed(&spec)?;
            }
            if let Ok(specs) = parse_limits(&text) {
                prop_assert!(!specs.is_empty());
                for spec in &specs {
                    check_parsed(spec)?;
                }
            }
        }

        #[test]
        fn never_panics_on_near_misses(
            text in "[0-9 \t/;,|.+-]{0,6}(per|PER|/)?[0-9 ]{0,25}(second|MINUTE|Hour|day|months|years|s|x)?[0-9 ;,|/]{0,25}",
        ) {
            match LimitSpec::parse(&text) {
                Ok(spec) => check_parsed(&spec)?,
                Err(e) => prop_assert!(e.to_string().starts_with("limit '")),
            }
            match parse_limits(&text) {
                Ok(specs) => {
                    prop_assert!(!specs.is_empty());
                    for spec in &specs {
                        check_parsed(spec)?;
                    }
                }
                Err(e) => prop_assert!(e.to_string().starts_with("limit '")),
            }
        }
    }
}
