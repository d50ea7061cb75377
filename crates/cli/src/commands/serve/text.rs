//! Gives back the mappings of code and read-only data that only start-up ran.
//!
//! The binary holds every subsystem (link checker, browser pool, pixel diff, both stores, the
//! CLI); an API process runs a small part of it. The kernel maps executable pages in 64 KiB
//! windows ("fault-around"), and everything start-up touched (configuration, migrations, the
//! store's and Redis client's set-up, TLS set-up) stays mapped for the life of the process.
//! On PostgreSQL after the load harness's W1, W2, W3 and W5, 17.5–18 MiB of the binary were
//! resident without this and 13.5–14 MiB with it (same build otherwise). Once the listener
//! is up, this drops the process's page-table entries for the binary's clean read-only
//! mappings (`MADV_DONTNEED`); the pages stay in the page cache, and what the
//! service runs next comes back on its first use as a minor fault, without I/O. Only mappings
//! without one private (copy-on-write) page are touched, so no relocated data is lost.
//! Written by hand because no crate does it: it is one `madvise` per mapping.

use std::path::Path;

/// A mapping of the running binary that `madvise(MADV_DONTNEED)` may drop.
#[derive(Debug, PartialEq, Eq)]
struct Droppable {
    start: usize,
    len: usize,
}

/// The address range of a mapping's header line in `/proc/self/smaps` (`start-end perms …`);
/// `None` for the lines of a mapping's fields.
fn header_range(line: &str) -> Option<(usize, usize)> {
    let (start, end) = line.split_ascii_whitespace().next()?.split_once('-')?;
    Some((
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
    ))
}

/// Parses `/proc/self/smaps`: the read-only private mappings of `exe` that hold no anonymous
/// (copy-on-write) page.
fn droppable(smaps: &str, exe: &Path) -> Vec<Droppable> {
    let exe = exe.to_string_lossy();
    let mut found = Vec::new();
    let mut current: Option<Droppable> = None;
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = header_range(line) {
            // A mapping's header line: range, perms, offset, dev, inode, path (which may
            // hold spaces, hence matched as the line's end).
            let perms = fields.next().unwrap_or("");
            let of_exe = line
                .strip_suffix(&*exe)
                .is_some_and(|head| head.ends_with(' '));
            current = (of_exe && (perms == "r-xp" || perms == "r--p") && end > start).then_some(
                Droppable {
                    start,
                    len: end - start,
                },
            );
            continue;
        }
        if first == "Anonymous:"
            && let Some(m) = current.take()
            && fields.next() == Some("0")
        {
            found.push(m);
        }
    }
    found
}

/// Drops the page-table entries of the binary's clean read-only mappings (see the module
/// docs). Returns the bytes of address space advised; failures are logged and ignored (the
/// process only keeps more memory mapped).
pub(super) fn release_startup_pages() -> usize {
    let (Ok(exe), Ok(smaps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/smaps"),
    ) else {
        return 0;
    };
    let mut released = 0;
    for m in droppable(&smaps, &exe) {
        // SAFETY: the range is a whole private, read-only mapping of the executable file
        // with no copy-on-write page (checked above): its contents are exactly the file's,
        // so MADV_DONTNEED only drops page-table entries and every later access faults the
        // same bytes back in from the page cache. Nothing writes to a read-only mapping.
        #[allow(unsafe_code)]
        let result = unsafe {
            rustix::mm::madvise(
                m.start as *mut std::ffi::c_void,
                m.len,
                rustix::mm::Advice::LinuxDontNeed,
            )
        };
        match result {
            Ok(()) => released += m.len,
            Err(e) => tracing::debug!(error = %e, "madvise(MADV_DONTNEED) on the binary failed"),
        }
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0100000 r--p 00000000 fd:01 123 /opt/qa/qa-sentinel
Size:               1024 kB
Rss:                 512 kB
Anonymous:             0 kB
55d0a0100000-55d0a1000000 r-xp 00100000 fd:01 123 /opt/qa/qa-sentinel
Size:              15360 kB
Anonymous:             0 kB
55d0a1000000-55d0a1100000 r--p 01000000 fd:01 123 /opt/qa/qa-sentinel
Anonymous:           912 kB
55d0a1100000-55d0a1110000 rw-p 01100000 fd:01 123 /opt/qa/qa-sentinel
Anonymous:            64 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Anonymous:           100 kB
";

    #[test]
    fn only_clean_read_only_mappings_of_the_binary_are_dropped() {
        let found = droppable(SMAPS, Path::new("/opt/qa/qa-sentinel"));
        assert_eq!(
            found,
            vec![
                Droppable {
                    start: 0x55d0_a000_0000,
                    len: 0x10_0000
                },
                Droppable {
                    start: 0x55d0_a010_0000,
                    len: 0xf0_0000
                },
            ],
            "the relocated (copy-on-write) r--p part, the data and libc stay"
        );
    }

    #[test]
    fn other_paths_and_paths_with_spaces() {
        assert!(droppable(SMAPS, Path::new("/opt/other")).is_empty());
        assert!(
            droppable(SMAPS, Path::new("qa-sentinel")).is_empty(),
            "whole path only"
        );
        assert!(droppable("", Path::new("/opt/qa/qa-sentinel")).is_empty());
        let spaced = "5000-6000 r-xp 00000000 fd:01 9 /tmp/my dir/qa\nAnonymous: 0 kB\n";
        assert_eq!(
            droppable(spaced, Path::new("/tmp/my dir/qa")),
            vec![Droppable {
                start: 0x5000,
                len: 0x1000
            }]
        );
    }

    /// Resident kilobytes of the binary's clean read-only mappings.
    fn resident_kb() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let starts: Vec<usize> = droppable(&smaps, &exe).iter().map(|m| m.start).collect();
        let mut total = 0;
        let mut counting = false;
        for line in smaps.lines() {
            if let Some((start, _)) = header_range(line) {
                counting = starts.contains(&start);
            } else if counting && let Some(kb) = line.strip_prefix("Rss:") {
                total += kb.trim().trim_end_matches(" kB").parse::<u64>().unwrap();
            }
        }
        total
    }

    #[test]
    fn the_process_runs_on_with_less_of_its_binary_mapped() {
        let before = resident_kb();
        let released = release_startup_pages();
        assert!(released > 0, "the test binary has clean read-only mappings");
        // Whatever runs next comes back from the page cache: this very test goes on.
        let after = resident_kb();
        assert!(
            after < before,
            "resident {before} kB before, {after} kB after"
        );
    }
}
