use super::*;

/// A made-up root: `files` (path, contents) under a fresh folder.
fn root(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const MEMINFO: &str =
    "MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:    8000000 kB\n";

#[test]
fn mem_available_is_read_in_kib() {
    assert_eq!(mem_available(MEMINFO), Some(8_000_000 * 1024));
    assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
    assert_eq!(mem_available("MemAvailable: lots kB\n"), None);
}

#[test]
fn cgroup_paths_finds_v2_and_the_v1_memory_controller() {
    let text = "12:cpu,cpuacct:/a\n4:memory:/docker/abc\n0::/user.slice/app\n";
    assert_eq!(
        cgroup_paths(text),
        (Some("/user.slice/app"), Some("/docker/abc"))
    );
    assert_eq!(cgroup_paths("3:blkio,memory:/x\n"), (None, Some("/x")));
    assert_eq!(cgroup_paths("0::/\n"), (Some("/"), None));
    assert_eq!(cgroup_paths("garbage\n"), (None, None));
}

#[test]
fn without_cgroups_mem_available_applies() {
    let r = root(&[("proc/meminfo", MEMINFO)]);
    let a = available_under(r.path()).unwrap();
    assert_eq!(a.bytes, 8_000_000 * 1024);
    assert_eq!(a.source, "MemAvailable");
}

/// 1000 MiB MemAvailable; the cgroup a/b allows 600 MiB and uses 100 (500 left), its parent a
/// allows 400 and uses 350 (50 left, the tightest); the root says "max".
#[test]
fn the_tightest_v2_limit_up_the_tree_applies() {
    let mib = 1 << 20;
    let r = root(&[
        ("proc/meminfo", "MemAvailable: 1024000 kB\n"),
        ("proc/self/cgroup", "0::/a/b\n"),
        ("sys/fs/cgroup/memory.max", "max\n"),
        ("sys/fs/cgroup/memory.current", "123\n"),
        ("sys/fs/cgroup/a/b/memory.max", &format!("{}\n", 600 * mib)),
        (
            "sys/fs/cgroup/a/b/memory.current",
            &format!("{}\n", 100 * mib),
        ),
        ("sys/fs/cgroup/a/memory.max", &format!("{}\n", 400 * mib)),
        (
            "sys/fs/cgroup/a/memory.current",
            &format!("{}\n", 350 * mib),
        ),
    ]);
    let a = available_under(r.path()).unwrap();
    assert_eq!(a.bytes, 50 * mib);
    let expected = r.path().join("sys/fs/cgroup/a/memory.max");
    assert_eq!(
        a.source,
        format!("the cgroup v2 limit of {}", expected.display())
    );
}

#[test]
fn a_v2_limit_of_max_leaves_mem_available() {
    let r = root(&[
        ("proc/meminfo", MEMINFO),
        ("proc/self/cgroup", "0::/a\n"),
        ("sys/fs/cgroup/a/memory.max", "max\n"),
        ("sys/fs/cgroup/a/memory.current", "1000\n"),
    ]);
    assert_eq!(available_under(r.path()).unwrap().source, "MemAvailable");
}

#[test]
fn a_v1_limit_applies_and_usage_over_it_leaves_nothing() {
    let r = root(&[
        ("proc/meminfo", MEMINFO),
        ("proc/self/cgroup", "4:memory:/docker/abc\n0::/\n"),
        (
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        ),
        ("sys/fs/cgroup/memory/memory.usage_in_bytes", "5\n"),
        (
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
            "1000\n",
        ),
        (
            "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes",
            "3000\n",
        ),
    ]);
    let a = available_under(r.path()).unwrap();
    assert_eq!(a.bytes, 0);
    assert!(
        a.source.starts_with("the cgroup v1 limit of "),
        "{}",
        a.source
    );
    assert!(
        a.source.ends_with("docker/abc/memory.limit_in_bytes"),
        "{}",
        a.source
    );
}

/// A cgroup namespace shows a path that does not exist under the mount: the walk goes up to
/// the mount's own files, the container's limit.
#[test]
fn a_namespaced_path_falls_back_to_the_mounts_own_limit() {
    let r = root(&[
        ("proc/self/cgroup", "0::/not/here\n"),
        ("sys/fs/cgroup/memory.max", "2048\n"),
        ("sys/fs/cgroup/memory.current", "48\n"),
    ]);
    assert_eq!(available_under(r.path()).unwrap().bytes, 2000);
}

#[test]
fn no_figure_at_all_is_none() {
    let r = root(&[]);
    assert_eq!(available_under(r.path()), None);
}

#[test]
fn the_address_space_limit_leaves_the_room_not_yet_mapped() {
    let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                  Max address space         4000000000           unlimited            bytes\n";
    let status = "Name:\trnn\nVmSize:\t  100000 kB\n";
    let room = address_space_room(limits, status).unwrap();
    assert_eq!(room.bytes, 4_000_000_000 - 100_000 * 1024);
    let unlimited = limits.replace("4000000000", "unlimited");
    assert_eq!(address_space_room(&unlimited, status), None);
}
