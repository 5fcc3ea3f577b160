//! Which instruction set the CPU fast path's kernels use, and how to force one.
//!
//! By default a run uses the best level this CPU supports ([`KernelLevel::detect`]). A program
//! may force a lower one with [`set`] (the `rnn` CLI does, from `RNN_CPU_KERNEL`), to compare
//! levels or to reproduce on one machine what another computes; asking for a level this CPU
//! lacks is an error.
//!
//! ```
//! use rnn_core::cpu_kernel::{self, KernelLevel};
//!
//! // Every level this CPU supports, generic first; the best one is the default.
//! let levels = KernelLevel::available();
//! assert_eq!(levels[0], KernelLevel::Generic);
//! assert_eq!(levels.last(), Some(&KernelLevel::detect()));
//! assert_eq!(cpu_kernel::get(), KernelLevel::detect());
//! # Ok::<(), candle_core::Error>(())
//! ```

use std::sync::atomic::{AtomicU8, Ordering};

/// A set of kernels of the CPU fast path, from the plainest to the widest.
///
/// All levels compute the same function; results of `Avx2` and `Avx512` are bit-identical to
/// each other, in f32 and in f64 (the same fused multiply-adds in the same order), `Generic`
/// differs from them in the last bits (separate multiplies and adds where they fuse them: a
/// CPU without FMA has no fused multiply-add to match them cheaply). Every level gives the
/// same numbers whatever the thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelLevel {
    /// Portable loops, summing each element in order with separate multiplies and adds, and
    /// a separate bias and activation pass: the only level off x86-64.
    Generic,
    /// x86-64 with AVX2 and FMA: micro-kernels on packed weights, in 6 × 16 register blocks
    /// for f32 and 6 × 8 for f64.
    Avx2,
    /// x86-64 with AVX-512F: micro-kernels on packed weights, in 6 × 64 register blocks for
    /// f32 and 6 × 32 for f64.
    Avx512,
}

impl KernelLevel {
    /// Every level, in order.
    pub const ALL: [KernelLevel; 3] = [Self::Generic, Self::Avx2, Self::Avx512];

    /// The best level this CPU supports.
    pub fn detect() -> Self {
        if avx512_detected() {
            Self::Avx512
        } else if avx2_detected() {
            Self::Avx2
        } else {
            Self::Generic
        }
    }

    /// Every level this CPU supports, from `Generic` to [`KernelLevel::detect`].
    pub fn available() -> Vec<Self> {
        Self::ALL.into_iter().filter(|l| l.is_available()).collect()
    }

    /// Whether this CPU supports the level.
    pub fn is_available(self) -> bool {
        self <= Self::detect()
    }

    /// The level's name: `generic`, `avx2` or `avx512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// The level [`KernelLevel::as_str`] names, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == name)
    }

    fn requirement(self) -> &'static str {
        match self {
            Self::Generic => "nothing",
            Self::Avx2 => "an x86-64 CPU with AVX2 and FMA",
            Self::Avx512 => "an x86-64 CPU with AVX-512F",
        }
    }
}

impl std::fmt::Display for KernelLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The level set with [`set`]; 0 while none is.
static FORCED: AtomicU8 = AtomicU8::new(0);

/// Makes every later CPU run of this process use `level` (until set again).
///
/// # Errors
/// When this CPU does not support `level`; the message names what it needs and the levels
/// that are available.
pub fn set(level: KernelLevel) -> candle_core::Result<()> {
    if !level.is_available() {
        let available: Vec<&str> = KernelLevel::available()
            .into_iter()
            .map(KernelLevel::as_str)
            .collect();
        return Err(candle_core::Error::Msg(format!(
            "the CPU kernel level {level} needs {}, which this CPU is not; available: {}",
            level.requirement(),
            available.join(", ")
        )));
    }
    FORCED.store(level as u8 + 1, Ordering::Relaxed);
    Ok(())
}

/// The level CPU runs use: the one [`set`] last, else [`KernelLevel::detect`].
pub fn get() -> KernelLevel {
    match FORCED.load(Ordering::Relaxed) {
        0 => KernelLevel::detect(),
        forced => KernelLevel::ALL[usize::from(forced - 1)],
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) fn avx512_detected() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(target_arch = "x86_64")]
pub(super) fn avx2_detected() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn avx512_detected() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn avx2_detected() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_levels_are_ordered() {
        for level in KernelLevel::ALL {
            assert_eq!(KernelLevel::from_name(level.as_str()), Some(level));
        }
        assert_eq!(KernelLevel::from_name("sse2"), None);
        let available = KernelLevel::available();
        assert_eq!(available[0], KernelLevel::Generic);
        assert!(available.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*available.last().unwrap(), KernelLevel::detect());
    }

    /// Forcing a level the CPU lacks is refused (not tried, which would be undefined
    /// behaviour); the error says what is available. Only the refusal is tested here: a
    /// successful `set` would change the level of the tests running beside this one.
    #[test]
    fn a_level_the_cpu_lacks_is_refused() {
        for level in KernelLevel::ALL.into_iter().filter(|l| !l.is_available()) {
            let message = set(level).unwrap_err().to_string();
            assert!(message.contains("available: generic"), "{message}");
            assert_eq!(FORCED.load(Ordering::Relaxed), 0);
        }
    }
}
