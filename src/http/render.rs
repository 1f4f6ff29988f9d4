//! Rate-limit response headers and the 429 body, rendered as bytes.
//!
//! `X-RateLimit-Reset` is the number of seconds from now until the key is fresh again (whole,
//! rounded up), as in the IETF draft and most gateways; not an epoch time, which would make every
//! client's answer depend on its clock. `Retry-After` is the real wait, whole seconds rounded up,
//! at least 1.

use smallvec::SmallVec;

use crate::algorithm::Decision;
use crate::clock::{Nanos, NANOS_PER_SEC};

/// A header value: inline up to 24 bytes (any number; a `RateLimit` field with a short policy
/// name), so that an admitted request's headers are rendered without a heap allocation.
pub type HeaderValue = SmallVec<[u8; 24]>;

/// Response headers: (lower-case name, one of [`NAMES`], value). Up to three inline: the
/// `x-ratelimit` or `draft` headers of an admitted response; `both`'s five and a 429's spill to
/// the heap. (Room for more would make every [`super::Outcome`], moved from call to call,
/// bigger than it is now: 184 bytes.)
pub type Headers = SmallVec<[(&'static [u8], HeaderValue); 3]>;

/// Every header name rendered here, so that bindings can keep one object per name.
pub static NAMES: [&[u8]; 8] = [
    b"x-ratelimit-limit",
    b"x-ratelimit-remaining",
    b"x-ratelimit-reset",
    b"ratelimit-policy",
    b"ratelimit",
    b"retry-after",
    b"content-type",
    b"content-length",
];

/// Which rate-limit headers a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStyle {
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset`.
    XRateLimit,
    /// The IETF draft's structured fields (draft -11): `RateLimit-Policy` and `RateLimit`.
    Draft,
    /// Both.
    Both,
    /// None (429s still carry `Retry-After`).
    None,
}

impl std::str::FromStr for HeaderStyle {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "x-ratelimit" => HeaderStyle::XRateLimit,
            "draft" => HeaderStyle::Draft,
            "both" => HeaderStyle::Both,
            "none" => HeaderStyle::None,
            _ => {
                return Err(crate::error::Error::invalid(
                    "headers",
                    format!("must be 'x-ratelimit', 'draft', 'both' or 'none', got '{s}'"),
                ))
            }
        })
    }
}

/// Whole seconds, rounded up.
pub fn ceil_secs(n: Nanos) -> u64 {
    n.div_ceil(NANOS_PER_SEC)
}

/// `n` in decimal, written straight into an inline value (no copy, no core::fmt).
fn num(mut n: u64) -> HeaderValue {
    let len = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    let mut buf = [0u8; 24];
    for digit in buf[..len].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    HeaderValue::from_buf_and_len(buf, len)
}

/// A policy name as a structured-field string's content: its printable ASCII, without `"` and
/// `\` (any byte of a non-ASCII character is not printable ASCII).
fn sf_string(name: &str) -> impl Iterator<Item = u8> + '_ {
    name.bytes()
        .filter(|b| b.is_ascii_graphic() || *b == b' ')
        .filter(|b| *b != b'"' && *b != b'\\')
}

/// The rate-limit headers for a decision under the policy `name` with period `window`.
///
/// ```
/// use seawall::algorithm::Decision;
/// use seawall::http::render::{headers, HeaderStyle};
///
/// let d = Decision { allowed: true, limit: 100, remaining: 50, reset_after: 29_500_000_000, retry_after: 0 };
/// let h = headers(HeaderStyle::Both, &d, 60_000_000_000, "api");
/// let field = |name: &[u8]| h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_vec());
/// assert_eq!(field(b"x-ratelimit-reset").unwrap(), b"30");
/// assert_eq!(field(b"ratelimit-policy").unwrap(), b"\"api\";q=100;w=60");
/// assert_eq!(field(b"ratelimit").unwrap(), b"\"api\";r=50;t=30");
/// ```
pub fn headers(style: HeaderStyle, d: &Decision, window: Nanos, name: &str) -> Headers {
    let mut out = match style {
        HeaderStyle::None => return Headers::new(),
        // Room for them all at once: `both`'s five spill in one allocation, not two.
        HeaderStyle::Both => Headers::with_capacity(5),
        HeaderStyle::XRateLimit | HeaderStyle::Draft => Headers::new(),
    };
    if matches!(style, HeaderStyle::XRateLimit | HeaderStyle::Both) {
        out.push((NAMES[0], num(d.limit)));
        out.push((NAMES[1], num(d.remaining)));
        out.push((NAMES[2], num(ceil_secs(d.reset_after))));
    }
    if matches!(style, HeaderStyle::Draft | HeaderStyle::Both) {
        // `"name";a=x;b=y`
        let field = |a: &[u8], x: u64, b: &[u8], y: u64| {
            let mut v = HeaderValue::new();
            v.push(b'"');
            v.extend(sf_string(name));
            v.extend_from_slice(b"\";");
            v.extend_from_slice(a);
            v.extend_from_slice(itoa::Buffer::new().format(x).as_bytes());
            v.push(b';');
            v.extend_from_slice(b);
            v.extend_from_slice(itoa::Buffer::new().format(y).as_bytes());
            v
        };
        out.push((NAMES[3], field(b"q=", d.limit, b"w=", ceil_secs(window))));
        out.push((
            NAMES[4],
            field(b"r=", d.remaining, b"t=", ceil_secs(d.reset_after)),
        ));
    }
    out
}

/// The 429's headers (the rate-limit ones plus `Retry-After`, `Content-Type`, `Content-Length`)
/// and its body, seed 000's shape: `{"error": {"code": 429, "message": "Rate limit exceeded",
/// "retry_after": N}}`.
pub fn denial(mut headers: Headers, d: &Decision) -> (Headers, Vec<u8>) {
    let retry = if d.retry_after == Nanos::MAX {
        // Never admissible; tell the client a day rather than a meaningless number.
        86_400
    } else {
        ceil_secs(d.retry_after).max(1)
    };
    let body = format!(
        "{{\"error\":{{\"code\":429,\"message\":\"Rate limit exceeded\",\"retry_after\":{retry}}}}}"
    )
    .into_bytes();
    headers.reserve_exact(3);
    headers.push((NAMES[5], num(retry)));
    headers.push((NAMES[6], HeaderValue::from_slice(b"application/json")));
    headers.push((NAMES[7], num(body.len() as u64)));
    (headers, body)
}

/// The 503 of a store that cannot decide under `on_error="deny"`: `Retry-After` (whole seconds,
/// at least 1), `Content-Type`, `Content-Length` and a JSON body, but no rate-limit header: the
/// client has spent nothing, and no budget is known.
///
/// ```
/// use seawall::http::render::unavailable;
///
/// let (headers, body) = unavailable(1_500_000_000);
/// assert_eq!((headers[0].0, &headers[0].1[..]), (&b"retry-after"[..], &b"2"[..]));
/// assert!(String::from_utf8(body).unwrap().contains("\"code\":503"));
/// ```
pub fn unavailable(wait: Nanos) -> (Headers, Vec<u8>) {
    let retry = ceil_secs(wait).max(1);
    let body = format!(
        "{{\"error\":{{\"code\":503,\"message\":\"Rate limit store unavailable\",\"retry_after\":{retry}}}}}"
    )
    .into_bytes();
    let headers = Headers::from_iter([
        (NAMES[5], num(retry)),
        (NAMES[6], HeaderValue::from_slice(b"application/json")),
        (NAMES[7], num(body.len() as u64)),
    ]);
    (headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The bytes are those `format!` gave before values were built inline.
        #[test]
        fn fields_are_spelled_as_before(
            limit: u64, remaining: u64, reset_after: u64, window: u64, name in "\\PC{0,40}",
        ) {
            let d = Decision { allowed: true, limit, remaining, reset_after, retry_after: 0 };
            let h = headers(HeaderStyle::Both, &d, window, &name);
            let clean: String = name
                .chars()
                .filter(|c| (c.is_ascii_graphic() || *c == ' ') && *c != '"' && *c != '\\')
                .collect();
            let want = [
                limit.to_string(),
                remaining.to_string(),
                ceil_secs(reset_after).to_string(),
                format!("\"{clean}\";q={limit};w={}", ceil_secs(window)),
                format!("\"{clean}\";r={remaining};t={}", ceil_secs(reset_after)),
            ];
            prop_assert_eq!(h.len(), 5);
            for (i, ((n, v), w)) in h.iter().zip(want).enumerate() {
                prop_assert_eq!(*n, NAMES[i]);
                prop_assert_eq!(&v[..], w.as_bytes());
            }
        }
    }

    #[test]
    fn numbers_at_every_length() {
        let mut n = 1u64;
        for _ in 0..20 {
            for m in [n - 1, n, n + 1, n.saturating_mul(10) - 1] {
                assert_eq!(&num(m)[..], m.to_string().as_bytes());
            }
            n = n.saturating_mul(10);
        }
        assert_eq!(&num(u64::MAX)[..], u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn numbers_stay_inline() {
        let d = Decision {
            allowed: true,
            limit: u64::MAX,
            remaining: u64::MAX,
            reset_after: u64::MAX,
            retry_after: 0,
        };
        let h = headers(HeaderStyle::XRateLimit, &d, 60_000_000_000, "default");
        assert!(!h.spilled());
        assert!(h.iter().all(|(_, v)| !v.spilled()));
        let d = Decision {
            limit: 100,
            remaining: 99,
            reset_after: 600_000_000,
            ..d
        };
        let h = headers(HeaderStyle::Draft, &d, 60_000_000_000, "default");
        assert!(!h.spilled());
        assert!(h.iter().all(|(_, v)| !v.spilled()), "{h:?}");
        assert!(std::mem::size_of::<super::super::Outcome>() <= 184);
        assert!(headers(HeaderStyle::None, &d, 0, "default").is_empty());
    }
}
