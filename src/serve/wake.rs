//! Waking the network thread the moment there is work: a datagram on the
//! server's socket, or a room handing over a tick's packets.
//!
//! The network thread used to sleep on the rooms' channel with a 1 ms
//! timeout and read the socket after it, so an input sat in the socket for
//! up to a millisecond (more with the VM's timer slack) before its room saw
//! it; polling faster cost 3 ms of server CPU per S4 tick. Instead it now
//! waits in `poll(2)` on two descriptors: the server's socket and the read
//! end of a pipe that rooms write one byte to after handing over packets or
//! sending a reply. The timeout stays as a backstop for messages posted
//! without a wake-up (tick timings, reports) and for renet's timers.
//!
//! A pipe rather than a loopback UDP socket: a datagram to loopback runs the
//! whole UDP send and receive path in the sending room's thread, which was
//! 6–7 % of S1's room-thread profile, inside the tick.
//!
//! A pass over the transport walks every client, so waking for each datagram
//! would let a busy server spend a core on passes. The caller therefore keeps
//! passes woken by datagrams apart (see `GameServer::wait`); a room's
//! wake-up is never held back.

use std::io;
#[cfg(unix)]
use std::io::{PipeReader, PipeWriter, Read, Write};
use std::net::UdpSocket;
#[cfg(unix)]
use std::os::fd::AsRawFd;
#[cfg(unix)]
use std::sync::Arc;
use std::time::Duration;

/// The network thread's end: what it waits on.
pub(crate) struct WakeSource {
    #[cfg(unix)]
    pipe: PipeReader,
}

/// A room's end: wakes the network thread. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Waker {
    #[cfg(unix)]
    pipe: Arc<PipeWriter>,
}

impl WakeSource {
    /// A wake-up pipe and a [`Waker`] for it. Both ends are non-blocking: a
    /// room never waits on a full pipe (the wake-ups already in it suffice).
    #[cfg(unix)]
    pub fn new() -> io::Result<(Self, Waker)> {
        let (reader, writer) = io::pipe()?;
        set_nonblocking(&reader)?;
        set_nonblocking(&writer)?;
        Ok((
            Self { pipe: reader },
            Waker {
                pipe: Arc::new(writer),
            },
        ))
    }

    /// Without `poll(2)` there is nothing to wait on: the caller polls.
    #[cfg(not(unix))]
    pub fn new() -> io::Result<(Self, Waker)> {
        Ok((Self {}, Waker {}))
    }

    /// Returns when `net` is readable, a [`Waker`] woke us, or `timeout`
    /// passed (`net` `None`: only a wake-up or the timeout), and says which.
    #[cfg(unix)]
    pub fn wait(&self, net: Option<&UdpSocket>, timeout: Duration) -> Woken {
        let woken = wait_readable(self.pipe.as_raw_fd(), net, timeout);
        let mut bytes = [0u8; 64];
        while matches!((&self.pipe).read(&mut bytes), Ok(n) if n > 0) {}
        woken
    }

    /// Sleeps for `timeout` (see [`WakeSource::new`]).
    #[cfg(not(unix))]
    pub fn wait(&self, _net: Option<&UdpSocket>, timeout: Duration) -> Woken {
        std::thread::sleep(timeout);
        Woken::Timeout
    }
}

#[cfg(unix)]
fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: `fd` is a live descriptor owned by the caller; F_GETFL and
    // F_SETFL only read and set its status flags.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0
    };
    if ok {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Why a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// A room's [`Waker`].
    Room,
    /// A datagram on the server's socket.
    Socket,
    /// The timeout (or a signal).
    Timeout,
}

impl Waker {
    /// Wakes the network thread (a lost wake-up only costs the backstop timeout).
    pub fn wake(&self) {
        #[cfg(unix)]
        let _ = (&*self.pipe).write(&[1]);
    }
}

#[cfg(unix)]
fn wait_readable(wake: std::os::fd::RawFd, net: Option<&UdpSocket>, timeout: Duration) -> Woken {
    let pollin = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [pollin(wake), pollin(net.map_or(wake, |n| n.as_raw_fd()))];
    let count = if net.is_some() { 2 } else { 1 };
    poll(&mut fds[..count], timeout);
    if fds[0].revents != 0 {
        Woken::Room
    } else if count == 2 && fds[1].revents != 0 {
        Woken::Socket
    } else {
        Woken::Timeout
    }
}

/// `ppoll(2)`: microsecond timeouts, which the gaps between passes need.
#[cfg(target_os = "linux")]
fn poll(fds: &mut [libc::pollfd], timeout: Duration) {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: live descriptors in a live slice of the length passed, a valid
    // timeout, no signal mask. An error (EINTR) returns early, like a wake-up.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &timeout,
            std::ptr::null(),
        )
    };
}

/// `poll(2)` elsewhere: millisecond timeouts, rounded up.
#[cfg(all(unix, not(target_os = "linux")))]
fn poll(fds: &mut [libc::pollfd], timeout: Duration) {
    let millis = i32::try_from(timeout.as_micros().div_ceil(1_000)).unwrap_or(i32::MAX);
    // SAFETY: as above.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn a_wait_ends_with_a_wake_up_or_a_datagram_and_says_which() {
        let (source, waker) = WakeSource::new().unwrap();
        let net = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        net.set_nonblocking(true).unwrap();
        let long = Duration::from_secs(5);

        waker.wake();
        assert_eq!(source.wait(Some(&net), long), Woken::Room);

        let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        peer.send_to(b"input", net.local_addr().unwrap()).unwrap();
        assert_eq!(source.wait(Some(&net), long), Woken::Socket);
        // Without the socket in the set, a waiting datagram does not end the wait.
        assert_eq!(source.wait(None, Duration::from_millis(20)), Woken::Timeout);
        let mut buf = [0u8; 16];
        assert_eq!(net.recv(&mut buf).unwrap(), 5);

        // The wake-up was consumed: with nothing new, the wait runs to its timeout.
        assert_eq!(
            source.wait(Some(&net), Duration::from_millis(20)),
            Woken::Timeout
        );
    }
}
