//! Rate-limit response headers and the 429 body, rendered as bytes.
//!
//! `X-RateLimit-Reset` is the number of seconds from now until the key is fresh again (whole,
//! rounded up), as in the IETF draft and most gateways; not an epoch time, which would make every
//! client's answer depend on its clock. `Retry-After` is the real wait, whole seconds rounded up,
//! at least 1.

use crate::algorithm::Decision;
use crate::clock::{Nanos, NANOS_PER_SEC};

/// Response headers: (lower-case name, one of [`NAMES`], value).
pub type Headers = Vec<(&'static [u8], Vec<u8>)>;

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

fn num(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// A policy name as a structured-field string: printable ASCII, without `"` and `\`.
fn sf_string(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .filter(|c| *c != '"' && *c != '\\')
        .collect()
}

/// The rate-limit headers for a decision under the policy `name` with period `window`.
///
/// ```
/// use seawall::algorithm::Decision;
/// use seawall::http::render::{headers, HeaderStyle};
///
/// let d = Decision { allowed: true, limit: 100, remaining: 50, reset_after: 29_500_000_000, retry_after: 0 };
/// let h = headers(HeaderStyle::Both, &d, 60_000_000_000, "api");
/// assert!(h.contains(&(&b"x-ratelimit-reset"[..], b"30".to_vec())));
/// assert!(h.contains(&(&b"ratelimit-policy"[..], b"\"api\";q=100;w=60".to_vec())));
/// assert!(h.contains(&(&b"ratelimit"[..], b"\"api\";r=50;t=30".to_vec())));
/// ```
pub fn headers(style: HeaderStyle, d: &Decision, window: Nanos, name: &str) -> Headers {
    let mut out = Vec::with_capacity(5);
    if matches!(style, HeaderStyle::XRateLimit | HeaderStyle::Both) {
        out.push((NAMES[0], num(d.limit)));
        out.push((NAMES[1], num(d.remaining)));
        out.push((NAMES[2], num(ceil_secs(d.reset_after))));
    }
    if matches!(style, HeaderStyle::Draft | HeaderStyle::Both) {
        let name = sf_string(name);
        out.push((
            NAMES[3],
            format!("\"{name}\";q={};w={}", d.limit, ceil_secs(window)).into_bytes(),
        ));
        out.push((
            NAMES[4],
            format!(
                "\"{name}\";r={};t={}",
                d.remaining,
                ceil_secs(d.reset_after)
            )
            .into_bytes(),
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
    headers.push((NAMES[5], num(retry)));
    headers.push((NAMES[6], b"application/json".to_vec()));
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
/// assert_eq!(headers[0], (&b"retry-after"[..], b"2".to_vec()));
/// assert!(String::from_utf8(body).unwrap().contains("\"code\":503"));
/// ```
pub fn unavailable(wait: Nanos) -> (Headers, Vec<u8>) {
    let retry = ceil_secs(wait).max(1);
    let body = format!(
        "{{\"error\":{{\"code\":503,\"message\":\"Rate limit store unavailable\",\"retry_after\":{retry}}}}}"
    )
    .into_bytes();
    let headers = vec![
        (NAMES[5], num(retry)),
        (NAMES[6], b"application/json".to_vec()),
        (NAMES[7], num(body.len() as u64)),
    ];
    (headers, body)
}
