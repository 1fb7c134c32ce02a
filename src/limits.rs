//! Process limits a server with many clients needs.

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit, so
/// the server can hold as many client connections as the system allows
/// (every connection is a file descriptor). Logs what it did; a failure is
/// logged and otherwise ignored, as the server still works within the soft
/// limit.
pub fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(
            err = %std::io::Error::last_os_error(),
            "cannot read the open-file limit"
        );
        return;
    }
    let soft = limit.rlim_cur;
    if soft >= limit.rlim_max {
        tracing::info!(
            open_files = soft,
            "open-file limit already at the hard limit"
        );
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        tracing::warn!(
            err = %std::io::Error::last_os_error(),
            soft = soft,
            hard = limit.rlim_max,
            "cannot raise the open-file limit"
        );
        return;
    }
    tracing::info!(
        from = soft,
        to = limit.rlim_max,
        "raised the open-file limit to the hard limit"
    );
}

/// The soft open-file limit now in force, if it can be read.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as above.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn soft_limit_reaches_the_hard_limit() {
        super::raise_open_file_limit();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        assert_eq!(super::open_file_limit(), Some(limit.rlim_cur));
    }
}
