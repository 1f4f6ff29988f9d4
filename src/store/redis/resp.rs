//! Writing RESP2, for the commands the direct connections write byte by byte
//! ([`super::script::packed_batch`]).

/// `n` in decimal digits.
pub(crate) struct Decimal {
    buf: [u8; 20],
    from: usize,
}

impl AsRef<[u8]> for Decimal {
    fn as_ref(&self) -> &[u8] {
        &self.buf[self.from..]
    }
}

pub(crate) fn decimal(mut n: u64) -> Decimal {
    let mut d = Decimal {
        buf: [0; 20],
        from: 20,
    };
    loop {
        d.from -= 1;
        d.buf[d.from] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return d;
        }
    }
}

/// A RESP header line: `kind`, `n`, CRLF.
pub(crate) fn resp_len(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    out.extend_from_slice(decimal(n as u64).as_ref());
    out.extend_from_slice(b"\r\n");
}

/// A RESP bulk string.
pub(crate) fn resp_bulk(out: &mut Vec<u8>, s: &[u8]) {
    resp_len(out, b'$', s.len());
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}
