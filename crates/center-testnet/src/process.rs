//! Starting, signalling and awaiting daemon processes without sleeping:
//! readiness comes from `READY=1` on a notify socket (the same code path
//! systemd uses), exit from a pidfd.
//!
//! Processes are found again from pid files, so a later `center-testnet`
//! invocation can stop what an earlier one started; a pid is only signalled
//! if its command line still names our config file (pids get reused).

use std::{
    fs,
    os::{
        fd::{AsFd, FromRawFd, OwnedFd},
        unix::{net::UnixDatagram, process::CommandExt},
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use nix::{
    poll::{PollFd, PollFlags, poll},
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// How long a daemon may take to say `READY=1`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to exit after SIGTERM before it gets SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one daemon of one peer keeps its run-time files.
#[derive(Debug, Clone)]
pub struct DaemonFiles {
    pub binary: PathBuf,
    pub config: PathBuf,
    pub pid_file: PathBuf,
    pub notify_socket: PathBuf,
    pub log: PathBuf,
}

/// Starts the daemon and waits until it says `READY=1`, with `skew` (the
/// environment of a clock offset, or none) added to its environment.
pub fn spawn_ready(files: &DaemonFiles, skew: &[(&str, String)]) -> anyhow::Result<Child> {
    if !files.binary.exists() {
        bail!(
            "{} is missing; run `cargo build --workspace --bins` first (or set CENTER_BIN_DIR)",
            files.binary.display()
        );
    }
    let _ = fs::remove_file(&files.notify_socket);
    let notify = UnixDatagram::bind(&files.notify_socket).with_context(|| {
        format!(
            "cannot bind notify socket {}",
            files.notify_socket.display()
        )
    })?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
        .with_context(|| format!("cannot open log {}", files.log.display()))?;
    let mut child = Command::new(&files.binary)
        .arg("--config")
        .arg(&files.config)
        .env("NOTIFY_SOCKET", &files.notify_socket)
        .envs(skew.iter().map(|(k, v)| (*k, v)))
        .env(
            "CENTER_LOG",
            std::env::var("CENTER_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C meant for the caller does not reach it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", files.binary.display()))?;
    fs::write(&files.pid_file, format!("{}\n", child.id()))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut buf = [0u8; 4096];
    // Short receive timeouts let us notice a daemon that died before READY.
    notify.set_read_timeout(Some(Duration::from_millis(100)))?;
    loop {
        match notify.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                if message.lines().any(|line| line == "READY=1") {
                    let _ = fs::remove_file(&files.notify_socket);
                    return Ok(child);
                }
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => return Err(err).context("notify socket failed"),
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{} exited ({status}) before it was ready; its log:\n{}",
                files.binary.display(),
                tail(&files.log)
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} was not ready within {:?}; its log:\n{}",
                files.binary.display(),
                READY_TIMEOUT,
                tail(&files.log)
            );
        }
    }
}

/// The pid recorded for a daemon, if it is still that daemon.
pub fn running_pid(files: &DaemonFiles) -> Option<Pid> {
    let text = fs::read_to_string(&files.pid_file).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let config = files.config.as_os_str().as_encoded_bytes();
    let ours = cmdline.split(|b| *b == 0).any(|arg| arg == config);
    ours.then(|| Pid::from_raw(pid))
}

/// Sends `signal` and waits for the process to exit; after SIGTERM, escalates
/// to SIGKILL if it does not exit in time.
pub fn signal_and_wait(files: &DaemonFiles, signal: Signal) -> anyhow::Result<()> {
    let Some(pid) = running_pid(files) else {
        let _ = fs::remove_file(&files.pid_file);
        return Ok(());
    };
    let pidfd = pidfd_open(pid)?;
    kill(pid, signal).with_context(|| format!("cannot signal {pid}"))?;
    if !wait_exit(&pidfd, STOP_TIMEOUT)? {
        kill(pid, Signal::SIGKILL).with_context(|| format!("cannot kill {pid}"))?;
        if !wait_exit(&pidfd, STOP_TIMEOUT)? {
            bail!("process {pid} did not exit even after SIGKILL");
        }
    }
    let _ = fs::remove_file(&files.pid_file);
    Ok(())
}

/// Waits until the pidfd reports exit; false on timeout.
fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, millis) {
            Ok(0) if left.is_zero() => return Ok(false),
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(err).context("poll on pidfd failed"),
        }
    }
}

#[allow(unsafe_code)]
fn pidfd_open(pid: Pid) -> anyhow::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // (or -1); it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("pidfd_open({pid}) failed"));
    }
    let fd = i32::try_from(fd).context("pidfd out of range")?;
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The last lines of a log, for error messages.
pub fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
