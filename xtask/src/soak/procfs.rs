//! What the soak reads from `/proc` about a gateway's data-plane process: CPU time, open
//! descriptors and its command line.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

/// Clock ticks per second in `/proc/<pid>/stat` (USER_HZ, 100 on every Linux architecture).
const USER_HZ: u64 = 100;

/// User plus system CPU time the process has used.
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = cpu_ticks(&stat).with_context(|| format!("{path}: no utime and stime"))?;
    Ok(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted from its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// How many descriptors the process has open.
pub(crate) fn open_descriptors(pid: u32) -> anyhow::Result<usize> {
    let path = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&path)
        .with_context(|| format!("listing {path}"))?
        .count())
}

/// How many of the descriptors numbered below `limit` (RLIMIT_NOFILE bounds the numbers a
/// process may open) are open; one inherited above the limit is not counted.
pub(crate) fn descriptors_below(pid: u32, limit: u64) -> anyhow::Result<usize> {
    let path = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&path)
        .with_context(|| format!("listing {path}"))?
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u64>().ok())
                .is_some_and(|fd| fd < limit)
        })
        .count())
}

/// The value after `flag` on the process's command line (`--log-path FILE`), if it has one.
pub(crate) fn argument(pid: u32, flag: &str) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    argument_after(&cmdline, flag)
}

/// The argument after `flag` in a NUL-separated command line.
fn argument_after(cmdline: &[u8], flag: &str) -> Option<String> {
    let mut arguments = cmdline
        .split(|byte| *byte == 0)
        .map(|argument| String::from_utf8_lossy(argument).into_owned());
    arguments.by_ref().find(|argument| argument == flag)?;
    arguments.next()
}

/// How many lines `path` holds (0 when it cannot be read).
pub(crate) fn line_count(path: &Path) -> usize {
    std::fs::read(path)
        .map(|bytes| bytes.iter().filter(|byte| **byte == b'\n').count())
        .unwrap_or(0)
}

/// The complete lines of `path` after its first `skip` ones.
pub(crate) fn lines_after(path: &Path, skip: usize) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let complete = text
        .iter()
        .rposition(|byte| *byte == b'\n')
        .map_or(&text[..0], |end| &text[..=end]);
    String::from_utf8_lossy(complete)
        .lines()
        .skip(skip)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        let stat = "4242 (envoy (main) x) S 1 4242 4242 0 -1 4194560 2190 0 0 0 150 37 0 0 20 0 3 0 1234 0 0\n";
        assert_eq!(cpu_ticks(stat), Some(187));
        assert_eq!(cpu_ticks("4242 (short) S 1 2"), None);
        assert_eq!(cpu_ticks("no command name"), None);
        let own = cpu_time(std::process::id()).expect("this process has a stat");
        assert!(own < Duration::from_secs(3600));
    }

    #[test]
    fn arguments_are_found_after_their_flag() {
        let cmdline = b"/bin/envoy\0-c\0/w/bootstrap.json\0--log-path\0/w/envoy.log\0";
        assert_eq!(
            argument_after(cmdline, "--log-path").as_deref(),
            Some("/w/envoy.log")
        );
        assert_eq!(
            argument_after(cmdline, "-c").as_deref(),
            Some("/w/bootstrap.json")
        );
        assert_eq!(argument_after(cmdline, "--admin-address-path"), None);
        assert_eq!(argument_after(b"envoy\0--log-path", "--log-path"), None);
    }

    #[test]
    fn descriptors_and_lines_of_this_process() {
        let open = open_descriptors(std::process::id()).expect("own fds");
        assert!(open >= 3);
        assert_eq!(
            descriptors_below(std::process::id(), 3).expect("own fds"),
            3,
            "stdin, stdout and stderr"
        );
        assert!(descriptors_below(std::process::id(), u64::MAX).expect("own fds") <= open);
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        assert_eq!(line_count(&log), 0, "a missing file has no lines");
        std::fs::write(&log, "one\ntwo\nthree").expect("write");
        assert_eq!(line_count(&log), 2, "an unfinished line is not counted");
        assert_eq!(lines_after(&log, 1), ["two"]);
        assert!(lines_after(&log, 5).is_empty());
    }
}
