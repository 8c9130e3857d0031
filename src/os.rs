//! Every call into the operating system that needs `unsafe`, behind safe functions: `poll(2)`,
//! the scheduling policy and the core affinity of the calling thread.
//!
//! The rest of the crate is `#![deny(unsafe_code)]`; this module alone is allowed it, so each
//! `unsafe` block sits next to the one reason it is sound. What the engine does with these calls
//! (which thread goes where, and why) is in `pipeline::placement`.

use std::io;

/// Waits until one of `fds` is ready or `timeout_ms` passes (negative: no timeout). Returns
/// how many entries have events in `revents` (0: the timeout passed).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, initialised slice of pollfd for the duration of the call, and
    // its length is the count passed.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if ready < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ready as usize)
    }
}

/// A non-real-time scheduling policy for the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `SCHED_OTHER`: the default.
    Normal,
    /// `SCHED_BATCH`: the same share of the CPU, but its wake-ups never preempt the thread that
    /// is running.
    Batch,
    /// `SCHED_IDLE`: runs only when nothing else on its core wants to.
    Idle,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Normal => "SCHED_OTHER",
            Policy::Batch => "SCHED_BATCH",
            Policy::Idle => "SCHED_IDLE",
        }
    }
}

/// Switches the calling thread to `policy`.
#[cfg(target_os = "linux")]
pub fn set_policy(policy: Policy) -> io::Result<()> {
    let policy = match policy {
        Policy::Normal => libc::SCHED_OTHER,
        Policy::Batch => libc::SCHED_BATCH,
        Policy::Idle => libc::SCHED_IDLE,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain syscall on the calling thread (pid 0) with a valid parameter.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's policy.
#[cfg(target_os = "linux")]
pub fn policy() -> io::Result<Policy> {
    // SAFETY: reads the calling thread's policy; no memory is passed.
    match unsafe { libc::sched_getscheduler(0) } {
        libc::SCHED_OTHER => Ok(Policy::Normal),
        libc::SCHED_BATCH => Ok(Policy::Batch),
        libc::SCHED_IDLE => Ok(Policy::Idle),
        -1 => Err(io::Error::last_os_error()),
        other => Err(io::Error::other(format!("scheduling policy {other}"))),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_policy(_: Policy) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// The cores the calling thread may run on, in ascending order.
#[cfg(target_os = "linux")]
pub fn allowed_cores() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: every index is below CPU_SETSIZE, the set's size in bits.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&core| unsafe { libc::CPU_ISSET(core, &set) }).collect())
}

/// Pins the calling thread to `core` alone.
#[cfg(target_os = "linux")]
pub fn pin_to(core: usize) -> io::Result<()> {
    if core >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no such core"));
    }
    // SAFETY: cpu_set_t is a plain bit array, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core` is below CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn allowed_cores() -> io::Result<Vec<usize>> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(target_os = "linux"))]
pub fn pin_to(_: usize) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Sends `signal` to `thread` (tests: interrupting a blocked system call).
#[cfg(test)]
pub fn signal_thread<T>(thread: &std::thread::JoinHandle<T>, signal: libc::c_int) -> io::Result<()> {
    use std::os::unix::thread::JoinHandleExt;
    // SAFETY: the handle is held, so the thread has not been joined and its id stays valid
    // (pthread_kill on a thread that has ended but is not joined is harmless).
    match unsafe { libc::pthread_kill(thread.as_pthread_t(), signal) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn poll_reports_a_readable_descriptor_and_times_out_on_an_idle_one() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let (reader, mut writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut fds = [libc::pollfd { fd: reader.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        assert_eq!(poll(&mut fds, 0).unwrap(), 0);
        writer.write_all(b"x").unwrap();
        assert_eq!(poll(&mut fds, -1).unwrap(), 1);
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
    }

    #[test]
    fn a_thread_runs_in_the_policy_it_switched_to_and_others_keep_theirs() {
        let switched = std::thread::spawn(|| {
            set_policy(Policy::Batch).unwrap();
            policy().unwrap()
        });
        assert_eq!(switched.join().unwrap(), Policy::Batch);
        assert_eq!(policy().unwrap(), Policy::Normal);
    }

    #[test]
    fn a_pinned_thread_may_run_on_its_core_only() {
        let core = *allowed_cores().unwrap().last().unwrap();
        let after = std::thread::spawn(move || {
            pin_to(core).unwrap();
            allowed_cores().unwrap()
        });
        assert_eq!(after.join().unwrap(), vec![core]);
    }

    #[test]
    fn pinning_to_a_core_that_does_not_exist_fails() {
        // The last core a cpu set can name: no machine this runs on has it.
        let missing = libc::CPU_SETSIZE as usize - 1;
        std::thread::spawn(move || {
            assert!(pin_to(missing).is_err());
            assert!(pin_to(libc::CPU_SETSIZE as usize).is_err());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_signalled_thread_is_reported_sent() {
        let thread = std::thread::spawn(|| ());
        // Signal 0: only checks that the thread can be signalled.
        assert!(signal_thread(&thread, 0).is_ok());
        thread.join().unwrap();
    }
}
