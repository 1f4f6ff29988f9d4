//! What the decision script answers ([`Reply`] per decision), read from a redis-rs [`Value`]
//! ([`parse_reply`]) or, on the direct connections, straight from the bytes
//! ([`read_decisions`]): the reply has one fixed shape, and redis-rs's general parser spent
//! about 0.5 µs per decision building the `Value` tree that was then read into [`Reply`]s.

use redis::{RedisError, RedisResult, Value};

use crate::clock::Nanos;

/// The script's "never" for a time.
const NEVER: i64 = -1;

/// What the script answers for one decision (times in ns; `Nanos::MAX`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Whether every limit admitted the cost (and, for a hit, counted it).
    pub allowed: bool,
    /// The binding limit's count.
    pub limit: u64,
    /// What the binding limit has left.
    pub remaining: u64,
    /// When the binding limit is fresh again.
    pub reset_after: Nanos,
    /// When the cost would be admitted (0 if it was; `Nanos::MAX`: never).
    pub retry_after: Nanos,
    /// Which limit binds, from 0 in the order given.
    pub binding: usize,
    /// The binding limit's own `reset_after`.
    pub binding_reset_after: Nanos,
    /// The time the script decided at, in µs.
    pub now_us: u64,
}

impl Reply {
    fn from_ints(r: [i64; 8]) -> Reply {
        let ns = |v: i64| -> Nanos {
            if v == NEVER {
                Nanos::MAX
            } else {
                (v.max(0) as u64).saturating_mul(1000)
            }
        };
        Reply {
            allowed: r[0] == 1,
            limit: r[1].max(0) as u64,
            remaining: r[2].max(0) as u64,
            reset_after: ns(r[3]),
            retry_after: ns(r[4]),
            binding: usize::try_from(r[5]).unwrap_or(0),
            binding_reset_after: ns(r[6]),
            now_us: r[7].max(0) as u64,
        }
    }
}

/// The error for a reply of the wrong shape.
pub(crate) fn unexpected() -> RedisError {
    (
        redis::ErrorKind::Client,
        "unexpected reply from the seawall script",
    )
        .into()
}

/// The script's reply for every decision of a call, or an error for any other reply.
pub fn parse_reply(value: Value) -> RedisResult<Vec<Reply>> {
    let Value::Array(decisions) = value else {
        return Err(unexpected());
    };
    decisions
        .into_iter()
        .map(|d| {
            let Value::Array(items) = d else {
                return Err(unexpected());
            };
            if items.len() != 8 {
                return Err(unexpected());
            }
            let mut out = [0i64; 8];
            for (o, v) in out.iter_mut().zip(items) {
                *o = match v {
                    Value::Int(n) => n,
                    _ => return Err(unexpected()),
                };
            }
            Ok(Reply::from_ints(out))
        })
        .collect()
}

/// A reply read off a direct connection: the script's decisions, read by [`read_decisions`]
/// without a [`Value`], or any other reply as redis-rs parses it.
#[derive(Debug)]
pub enum Answer {
    /// The script's reply.
    Decisions(Vec<Reply>),
    /// Any other reply (an error reply is a `Value::ServerError`).
    Other(Value),
}

impl Answer {
    /// The script's decisions, or an error for any other reply.
    pub fn decisions(self) -> RedisResult<Vec<Reply>> {
        match self {
            Answer::Decisions(d) => Ok(d),
            Answer::Other(v) => parse_reply(v),
        }
    }
}

/// What [`read_decisions`] made of the bytes at hand.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// The script's reply, whole, and how many bytes it took.
    Done(Vec<Reply>, usize),
    /// The start of one, so far: wait for more bytes.
    Partial,
    /// Not the script's reply (an error, another shape): for redis-rs's parser.
    Other,
}

/// Reads the script's reply from the start of `buf` (RESP2: an array of arrays of eight
/// integers), without building a [`Value`]; anything else is [`Scan::Other`], for the general
/// parser, which then reads it from the same first byte.
///
/// ```
/// use seawall::store::redis::reply::{read_decisions, Scan};
///
/// let one = b"*1\r\n*8\r\n:1\r\n:5\r\n:4\r\n:12000\r\n:0\r\n:0\r\n:12000\r\n:77\r\n";
/// let Scan::Done(d, used) = read_decisions(one) else { panic!() };
/// assert_eq!((d.len(), d[0].remaining, used), (1, 4, one.len()));
/// assert_eq!(read_decisions(&one[..20]), Scan::Partial);
/// assert_eq!(read_decisions(b"-ERR no\r\n"), Scan::Other);
/// ```
pub fn read_decisions(buf: &[u8]) -> Scan {
    let mut at = 0;
    let batch = match header(buf, &mut at, b'*') {
        Field::Int(n) if (1..=1 << 20).contains(&n) => n as usize,
        Field::Partial => return Scan::Partial,
        _ => return Scan::Other,
    };
    // Room for what the bytes at hand can hold (a decision takes at least 36 of them), not
    // for what the header claims: a partial reply is read again from the start.
    let mut out = Vec::with_capacity(batch.min(buf.len() / 36 + 1));
    for _ in 0..batch {
        match header(buf, &mut at, b'*') {
            Field::Int(8) => {}
            Field::Partial => return Scan::Partial,
            _ => return Scan::Other,
        }
        let mut ints = [0i64; 8];
        for v in &mut ints {
            *v = match header(buf, &mut at, b':') {
                Field::Int(n) => n,
                Field::Partial => return Scan::Partial,
                Field::Other => return Scan::Other,
            };
        }
        out.push(Reply::from_ints(ints));
    }
    Scan::Done(out, at)
}

enum Field {
    Int(i64),
    Partial,
    Other,
}

/// The line at `*at` if it is `kind` and a decimal integer (`-?[0-9]{1,18}\r\n`); moves `*at`
/// past it.
fn header(buf: &[u8], at: &mut usize, kind: u8) -> Field {
    let line = &buf[*at..];
    match line.first() {
        None => return Field::Partial,
        Some(&k) if k != kind => return Field::Other,
        Some(_) => {}
    }
    let mut i = 1;
    let negative = line.get(1) == Some(&b'-');
    if negative {
        i += 1;
    }
    let digits_from = i;
    let mut n: i64 = 0;
    loop {
        match line.get(i) {
            None => return Field::Partial,
            Some(&d @ b'0'..=b'9') if i - digits_from < 18 => n = n * 10 + i64::from(d - b'0'),
            Some(b'\r') if i > digits_from => break,
            Some(_) => return Field::Other,
        }
        i += 1;
    }
    match line.get(i + 1) {
        None => return Field::Partial,
        Some(b'\n') => {}
        Some(_) => return Field::Other,
    }
    *at += i + 2;
    Field::Int(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;
    use tokio_util::codec::Decoder;

    fn resp(batch: &[[i64; 8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", batch.len()).into_bytes();
        for d in batch {
            out.extend_from_slice(b"*8\r\n");
            for v in d {
                out.extend_from_slice(format!(":{v}\r\n").as_bytes());
            }
        }
        out
    }

    /// What redis-rs's parser and `parse_reply` make of `bytes`.
    fn general(bytes: &[u8]) -> RedisResult<Vec<Reply>> {
        let mut buf = BytesMut::from(bytes);
        let v = redis::ValueCodec::default().decode(&mut buf)?.unwrap();
        assert!(buf.is_empty());
        parse_reply(v)
    }

    proptest! {
        #[test]
        fn reads_what_the_general_parser_reads(
            batch in prop::collection::vec(
                prop::array::uniform8(prop_oneof![Just(-1i64), 0i64..=1 << 53]), 1..5),
            tail in prop::collection::vec(any::<u8>(), 0..8),
        ) {
            let bytes = resp(&batch);
            let mut with_tail = bytes.clone();
            with_tail.extend_from_slice(&tail);
            prop_assert_eq!(
                read_decisions(&with_tail),
                Scan::Done(general(&bytes).unwrap(), bytes.len())
            );
            for cut in 0..bytes.len() {
                prop_assert_eq!(read_decisions(&bytes[..cut]), Scan::Partial);
            }
        }
    }

    #[test]
    fn leaves_every_other_reply_to_the_general_parser() {
        for other in [
            &b"-ERR Function not found\r\n"[..],
            b"+OK\r\n",
            b"$3\r\nfoo\r\n",
            b"*1\r\n*7\r\n",
            b"*1\r\n*8\r\n$1\r\n",
            b"*0\r\n",
            b"*-1\r\n",
            b"*1\r\n*8\r\n:1x\r\n",
            b"*1\r\n*8\r\n:\r\n",
            b"*1\r\n*8\r\n:-\r\n",
            b"*1\r\n*8\r\n:12345678901234567890\r\n",
            b"*1\r\n*8\r\n:1\rx",
        ] {
            assert_eq!(read_decisions(other), Scan::Other, "{other:?}");
        }
    }
}
