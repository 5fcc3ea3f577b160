//! Refusing work that cannot fit in memory before allocating it: an allocation failure aborts
//! the process, which no error handling can turn into a message.
//!
//! The memory available is the smallest of the kernel's `MemAvailable` and the room left under
//! every cgroup limit that applies to this process (v2 `memory.max`, v1
//! `memory.limit_in_bytes`, this cgroup's and its parents'): in a container the cgroup limit is
//! usually the tighter. The parsing functions take file contents and a root folder, so tests
//! give them made-up files.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{bail, Result};

/// How much memory may be allocated now, and which figure said so.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Available {
    bytes: u64,
    /// `MemAvailable`, or `the cgroup v2 limit of /sys/fs/cgroup/…/memory.max`.
    source: String,
}

/// `MemAvailable` in a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The cgroup paths in a `/proc/self/cgroup` text: the v2 one (`0::/PATH`) and the v1 memory
/// controller's (`N:...,memory,...:/PATH`).
fn cgroup_paths(text: &str) -> (Option<&str>, Option<&str>) {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path);
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path);
        }
    }
    (v2, v1)
}

/// A number in a cgroup file; `None` for `max` (no limit) or anything unreadable.
fn cgroup_number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The tightest room under the limits of cgroup `path` and its parents, below `mount` (the
/// controller's mount point): `limit - usage` of each folder that has both files. A cgroup
/// namespace can show a path that is not under the mount; the walk then starts from the
/// deepest folder that exists.
fn cgroup_room(
    mount: &Path,
    path: &str,
    limit: &str,
    usage: &str,
    version: u8,
) -> Option<Available> {
    let mut dir = mount.join(path.trim_start_matches('/'));
    let mut best: Option<Available> = None;
    loop {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        if let (Some(l), Some(u)) = (read(limit), read(usage)) {
            if let (Some(l), Some(u)) = (cgroup_number(&l), cgroup_number(&u)) {
                let room = l.saturating_sub(u);
                if best.as_ref().is_none_or(|b| room < b.bytes) {
                    best = Some(Available {
                        bytes: room,
                        source: format!(
                            "the cgroup v{version} limit of {}",
                            dir.join(limit).display()
                        ),
                    });
                }
            }
        }
        if dir == mount || !dir.pop() || !dir.starts_with(mount) {
            break;
        }
    }
    best
}

/// The room under the address-space limit (`ulimit -v`, `prlimit --as`): the limit in a
/// `/proc/self/limits` text less `VmSize` in a `/proc/self/status` text. Past it an allocation
/// fails, and Rust aborts, whatever memory the machine has free.
fn address_space_room(limits: &str, status: &str) -> Option<Available> {
    let limit: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let used_kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(Available {
        bytes: limit.saturating_sub(used_kib.saturating_mul(1024)),
        source: "the address-space limit (ulimit -v) less what this process has mapped".into(),
    })
}

/// What `root` (`/` on a real system) says is available: the smallest figure, or `None` when
/// there is none.
fn available_under(root: &Path) -> Option<Available> {
    let read = |path: &str| std::fs::read_to_string(root.join(path)).ok();
    let mut figures = Vec::new();
    if let Some(bytes) = read("proc/meminfo").as_deref().and_then(mem_available) {
        figures.push(Available {
            bytes,
            source: "MemAvailable".into(),
        });
    }
    if let (Some(limits), Some(status)) = (read("proc/self/limits"), read("proc/self/status")) {
        figures.extend(address_space_room(&limits, &status));
    }
    if let Some(cgroups) = read("proc/self/cgroup") {
        let (v2, v1) = cgroup_paths(&cgroups);
        let cgroup = root.join("sys/fs/cgroup");
        if let Some(path) = v2 {
            figures.extend(cgroup_room(
                &cgroup,
                path,
                "memory.max",
                "memory.current",
                2,
            ));
        }
        if let Some(path) = v1 {
            let mount: PathBuf = cgroup.join("memory");
            figures.extend(cgroup_room(
                &mount,
                path,
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                1,
            ));
        }
    }
    figures.into_iter().min_by_key(|a| a.bytes)
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
/// Where the system gives no figure, says once on stderr that the check was skipped.
pub fn ensure_fits(what: &str, bytes: Option<u128>) -> Result<()> {
    let Some(bytes) = bytes else {
        bail!("{what} would need more memory than can be counted; refusing");
    };
    match available_under(Path::new("/")) {
        Some(available) if bytes > available.bytes as u128 => bail!(
            "{what} would need {} of memory, more than is available ({} by {}); refusing before \
             allocating",
            human(bytes),
            human(available.bytes as u128),
            available.source
        ),
        Some(_) => {}
        None => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "warning: the memory check was skipped: this system says nothing of the \
                     memory available (no /proc/meminfo or cgroup limit)"
                );
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
