//! Statistics the benchmarks share.

/// The median of `values` (sorted in place): the middle one, or the mean of the two middle
/// ones; NaN when there are none (a peer that did not run: f64 leaves some out).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
