//! Refusing work that cannot fit in memory before allocating it: an allocation failure aborts
//! the process, which no error handling can turn into a message.

use anyhow::{bail, Result};

/// Bytes the kernel says can be allocated without swapping (`MemAvailable`), if it says.
fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `bytes` in the largest unit that keeps it above 1.
pub fn human(bytes: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

/// Fails unless `bytes` (`None`: more than fits in 128 bits) fit in the memory available now.
pub fn ensure_fits(what: &str, bytes: Option<u128>) -> Result<()> {
    let Some(bytes) = bytes else {
        bail!("{what} would need more memory than can be counted; refusing");
    };
    if let Some(available) = available_bytes() {
        if bytes > available as u128 {
            bail!(
                "{what} would need {} of memory, more than is available ({}); refusing before allocating",
                human(bytes),
                human(available as u128)
            );
        }
    }
    Ok(())
}
