//! The rule of every decision that spans several limits (a key's limits, or a request's global
//! and per-client budgets): ask every limit, count only if all admit, and report the binding
//! one. Written once here; [`super::limit::LimitSet::decide`] and the HTTP policy use it.

use crate::algorithm::Decision;

/// Decides across `n` parts, all or nothing, pushing each part's decision on `out` in order:
/// asks each part without counting (`ask(i, false)`), then, only if `commit` and every part
/// admitted, asks each again counting (`ask(i, true)`), which admits again since nothing
/// changed in between (the caller holds whatever makes the parts atomic). A single part is all
/// or nothing by itself: it is asked once, with `commit`. Returns whether all admitted.
///
/// ```
/// use seawall::limiter::all_or_nothing::decide_all;
///
/// let mut left = [2u64, 0]; // the second part has nothing left
/// let mut out = Vec::new();
/// let all = decide_all(2, true, &mut out, |i, commit| {
///     let admit = left[i] > 0;
///     if admit && commit {
///         left[i] -= 1;
///     }
///     Ok::<_, ()>(admit)
/// }, |&d| d);
/// assert_eq!(all, Ok(false));
/// assert_eq!(out, [true, false]);
/// assert_eq!(left, [2, 0], "refused by one, counted by none");
/// ```
#[inline]
pub fn decide_all<D, E, O>(
    n: usize,
    commit: bool,
    out: &mut O,
    mut ask: impl FnMut(usize, bool) -> Result<D, E>,
    admitted: impl Fn(&D) -> bool,
) -> Result<bool, E>
where
    // A `Vec`, or a `SmallVec` where the parts are few and allocating is not wanted.
    O: Extend<D> + std::ops::DerefMut<Target = [D]>,
{
    if n == 1 {
        let d = ask(0, commit)?;
        let all = admitted(&d);
        out.extend([d]);
        return Ok(all);
    }
    let start = out.len();
    let mut all = true;
    for i in 0..n {
        let d = ask(i, false)?;
        all &= admitted(&d);
        out.extend([d]);
    }
    if all && commit {
        for i in 0..n {
            out[start + i] = ask(i, true)?;
        }
    }
    Ok(all)
}

/// The binding part of an all-or-nothing decision: when all admitted, the one with the fewest
/// units left; when refused, of those that refused, the one that admits last (the last of
/// equals). `decision` reads a part's decision.
///
/// ```
/// use seawall::algorithm::Decision;
/// use seawall::limiter::all_or_nothing::binding;
///
/// let d = |allowed, remaining, retry_after| Decision {
///     allowed, limit: 10, remaining, reset_after: 0, retry_after,
/// };
/// assert_eq!(binding(&[d(true, 5, 0), d(true, 2, 0)], true, |d| d), 1);
/// assert_eq!(binding(&[d(false, 0, 9), d(true, 3, 0), d(false, 0, 4)], false, |d| d), 0);
/// ```
#[inline]
pub fn binding<D>(parts: &[D], allowed: bool, decision: impl Fn(&D) -> &Decision) -> usize {
    if allowed {
        (0..parts.len()).min_by_key(|&i| decision(&parts[i]).remaining)
    } else {
        (0..parts.len())
            .filter(|&i| !decision(&parts[i]).allowed)
            .max_by_key(|&i| decision(&parts[i]).retry_after)
    }
    .unwrap_or(0)
}
