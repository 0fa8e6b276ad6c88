//! Transparent huge pages for the allocator's large blocks (glibc on Linux).
//!
//! The engine's working set is a few large buffers per partition (concatenated columns, sort
//! keys, gathered outputs) that are allocated, filled once and freed. glibc serves them from
//! fresh `mmap`s or from per-thread arena heaps that it trims back to the kernel, so each one
//! is faulted in again, 4 KiB at a time: at 20 M panel rows the factor-panel job spent 3.6-7.6
//! s of system CPU against 21-22 s of user CPU (docs/benchmarks.md, session 21). With glibc's
//! `glibc.malloc.hugetlb=1` tunable, malloc marks its `mmap`ed chunks and arena heaps
//! `MADV_HUGEPAGE`, so on kernels whose transparent huge pages are `madvise` (the default of
//! most distributions) they fault in 2 MiB at a time: system CPU 2.3-2.7 s, wall −0.6-1.0 s.
//!
//! Tunables are read once, when the process starts, so `main` calls [`reexec_with_tunable`]
//! before anything else: if the tunable is not set, the binary executes itself again (the same
//! process id, arguments and descriptors) with it added to `GLIBC_TUNABLES`. A user's own
//! `glibc.malloc.hugetlb` setting (say `GLIBC_TUNABLES=glibc.malloc.hugetlb=0`) is kept as it
//! is, and [`REEXEC_MARKER`] stops a second re-execution should the loader drop the variable.
//! Elsewhere (other C libraries, other systems) this is a no-op.

/// Set in the environment of the re-executed process (and inherited by its children).
pub const REEXEC_MARKER: &str = "LENDFUSION_MALLOC_TUNED";

/// The tunable's name (we set it to 1).
const TUNABLE: &str = "glibc.malloc.hugetlb";

/// The `GLIBC_TUNABLES` value to re-execute with, or `None` when the process should run as it
/// is: the user already chose a setting for the tunable, or this is the re-executed process.
pub fn tunables_to_set(tunables: Option<&str>, marker_set: bool) -> Option<String> {
    if marker_set {
        return None;
    }
    match tunables {
        None | Some("") => Some(format!("{TUNABLE}=1")),
        Some(existing) => {
            let chosen = existing
                .split(':')
                .any(|entry| entry.split('=').next() == Some(TUNABLE));
            (!chosen).then(|| format!("{existing}:{TUNABLE}=1"))
        }
    }
}

/// Re-executes this binary with the huge-page tunable set, if it is not set yet. Returns only
/// when nothing was done or the `exec` failed (then the process simply runs without it).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn reexec_with_tunable() {
    use std::os::unix::process::CommandExt;

    let tunables = std::env::var("GLIBC_TUNABLES").ok();
    let marker_set = std::env::var_os(REEXEC_MARKER).is_some();
    let Some(value) = tunables_to_set(tunables.as_deref(), marker_set) else {
        return;
    };
    let mut args = std::env::args_os();
    let Some(arg0) = args.next() else {
        return;
    };
    // `exec` only returns on failure (no /proc, say); the run goes on without the tunable.
    let _ = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", value)
        .env(REEXEC_MARKER, "1")
        .exec();
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn reexec_with_tunable() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tunable_is_added_when_nothing_is_set() {
        assert_eq!(
            tunables_to_set(None, false).as_deref(),
            Some("glibc.malloc.hugetlb=1")
        );
        assert_eq!(
            tunables_to_set(Some(""), false).as_deref(),
            Some("glibc.malloc.hugetlb=1")
        );
    }

    #[test]
    fn other_tunables_are_kept() {
        assert_eq!(
            tunables_to_set(Some("glibc.malloc.arena_max=2"), false).as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
        );
    }

    #[test]
    fn a_users_own_setting_is_respected() {
        assert_eq!(tunables_to_set(Some("glibc.malloc.hugetlb=0"), false), None);
        assert_eq!(
            tunables_to_set(
                Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2"),
                false
            ),
            None
        );
        // A longer name that starts the same is another tunable.
        assert!(tunables_to_set(Some("glibc.malloc.hugetlbx=1"), false).is_some());
    }

    #[test]
    fn the_reexecuted_process_does_not_reexecute() {
        assert_eq!(tunables_to_set(None, true), None);
        assert_eq!(
            tunables_to_set(Some("glibc.malloc.arena_max=2"), true),
            None
        );
    }
}
