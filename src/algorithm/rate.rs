//! Refill rates as exact fractions.
//!
//! A rate such as 10 tokens per second, or 1/3 token per second, is kept as a reduced fraction
//! `num / den` tokens per second, so that every later step is integer arithmetic: refilling for a
//! million small intervals adds exactly what one long interval would, with no floating-point drift.

/// The largest refill rate accepted, in tokens per second.
pub const MAX_RATE: f64 = 1e9;
/// The smallest non-zero refill rate accepted, in tokens per second (about one token in 31 years).
pub const MIN_RATE: f64 = 1e-9;
/// The largest denominator a rate is approximated with. Far finer than an `f64` can tell apart for
/// rates in range, and small enough that every product in the algorithms fits in a `u128`.
const MAX_DEN: u128 = 1 << 32;

/// A rate of `num / den` tokens per second, in lowest terms.
///
/// ```
/// use seawall::algorithm::rate::Rate;
///
/// let r = Rate::from_per_second(0.1).unwrap();
/// assert_eq!((r.num(), r.den()), (1, 10));
/// let third = Rate::from_per_second(1.0 / 3.0).unwrap();
/// assert_eq!((third.num(), third.den()), (1, 3));
/// assert!(Rate::from_per_second(-1.0).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    num: u64,
    den: u64,
}

impl Rate {
    /// A rate that never refills.
    pub const ZERO: Rate = Rate { num: 0, den: 1 };

    /// The fraction closest to `per_second` with a denominator of at most 2³², or `None` when
    /// `per_second` is negative, NaN, infinite, or outside `0` ∪ [[`MIN_RATE`], [`MAX_RATE`]].
    pub fn from_per_second(per_second: f64) -> Option<Rate> {
        if per_second == 0.0 {
            return Some(Rate::ZERO);
        }
        if !per_second.is_finite() || !(MIN_RATE..=MAX_RATE).contains(&per_second) {
            return None;
        }
        // The f64 is exactly mant / 2^shift; walk its continued fraction in integers.
        let bits = per_second.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i32;
        let mant = u128::from((bits & ((1 << 52) - 1)) | (1 << 52));
        let shift = 1075 - exponent; // 1075 = 1023 bias + 52 fraction bits
        let (num, den) = if shift <= 0 {
            (mant << (-shift), 1)
        } else {
            best_fraction(mant, 1u128 << shift)
        };
        Some(Rate {
            num: u64::try_from(num).ok()?,
            den: u64::try_from(den).ok()?,
        })
    }

    /// `num / den` per second, in lowest terms; `None` if `den` is 0, or if the rate is outside
    /// `0` ∪ [[`MIN_RATE`], [`MAX_RATE`]] or its reduced denominator is above 2³².
    ///
    /// ```
    /// use seawall::algorithm::rate::Rate;
    ///
    /// let r = Rate::new(10, 3600).unwrap(); // 10 per hour
    /// assert_eq!((r.num(), r.den()), (1, 360));
    /// ```
    pub fn new(num: u64, den: u64) -> Option<Rate> {
        if den == 0 {
            return None;
        }
        if num == 0 {
            return Some(Rate::ZERO);
        }
        let g = gcd(num, den);
        let (num, den) = (num / g, den / g);
        let as_f64 = num as f64 / den as f64;
        if u128::from(den) > MAX_DEN || !(MIN_RATE..=MAX_RATE).contains(&as_f64) {
            return None;
        }
        Some(Rate { num, den })
    }

    /// Tokens added per second: the numerator.
    pub fn num(&self) -> u64 {
        self.num
    }

    /// The denominator.
    pub fn den(&self) -> u64 {
        self.den
    }

    /// The rate as an `f64`, for display.
    pub fn as_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The last continued-fraction convergent of `a / b` whose denominator is at most [`MAX_DEN`].
fn best_fraction(mut a: u128, mut b: u128) -> (u128, u128) {
    // Convergents h/k: h(n) = q*h(n-1) + h(n-2), same for k.
    let (mut h_prev, mut h) = (0u128, 1u128);
    let (mut k_prev, mut k) = (1u128, 0u128);
    while b != 0 {
        let q = a / b;
        let h_next = q.saturating_mul(h).saturating_add(h_prev);
        let k_next = q.saturating_mul(k).saturating_add(k_prev);
        if k_next > MAX_DEN {
            break;
        }
        (h_prev, h) = (h, h_next);
        (k_prev, k) = (k, k_next);
        (a, b) = (b, a % b);
    }
    (h, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_rates_become_their_intended_fractions() {
        for (rate, num, den) in [
            (10.0, 10, 1),
            (0.5, 1, 2),
            (2.5, 5, 2),
            (0.001, 1, 1000),
            (1e9, 1_000_000_000, 1),
            (1.0 / 7.0, 1, 7),
        ] {
            let r = Rate::from_per_second(rate).unwrap();
            assert_eq!((r.num(), r.den()), (num, den), "rate {rate}");
        }
    }

    #[test]
    fn bad_rates_are_refused() {
        for rate in [-0.1, f64::NAN, f64::INFINITY, 1e-10, 2e9] {
            assert!(Rate::from_per_second(rate).is_none(), "rate {rate}");
        }
    }

    #[test]
    fn awkward_rates_round_trip_through_f64() {
        for rate in [0.123_456_789, 3.333_333_3, 1e-9, 987_654.321, 0.7] {
            let r = Rate::from_per_second(rate).unwrap();
            assert!(r.den() as u128 <= MAX_DEN);
            assert!(
                (r.as_f64() - rate).abs() <= rate * 1e-15,
                "rate {rate} -> {r:?}"
            );
        }
    }
}
