//! Whether a process the test started is still running (Linux: `/proc`).

/// Whether a process with this pid exists. A zombie counts as gone: it has exited and only waits
/// to be reaped. Takes std's `u32` pids as well as nix's `i32` ones.
pub fn process_alive(pid: impl Into<i64>) -> bool {
    let pid = pid.into();
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_an_impossible_pid_is_not() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(-1_i32));
    }
}
