//! Waking the network thread the moment there is work: a datagram on the
//! server's socket, or a room handing over a tick's packets.
//!
//! The network thread used to sleep on the rooms' channel with a 1 ms
//! timeout and read the socket after it, so an input sat in the socket for
//! up to a millisecond (more with the VM's timer slack) before its room saw
//! it; polling faster cost 3 ms of server CPU per S4 tick. Instead it now
//! waits in `poll(2)` on two descriptors: the server's socket and a wake-up
//! socket that rooms write one byte to after handing over packets. The
//! timeout stays as a backstop for messages sent without a wake-up (status,
//! replies to commands) and for renet's timers.
//!
//! A pass over the transport walks every client, so waking for each datagram
//! would let a busy server spend a core on passes. The caller therefore keeps
//! passes woken by datagrams apart (see `GameServer::wait`); a room's
//! wake-up is never held back.

use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

/// The network thread's end: what it waits on.
pub(crate) struct WakeSource {
    socket: UdpSocket,
}

/// A room's end: wakes the network thread. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Waker {
    socket: Arc<UdpSocket>,
}

impl WakeSource {
    /// A wake-up socket on the loopback interface and a [`Waker`] for it.
    pub fn new() -> io::Result<(Self, Waker)> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_nonblocking(true)?;
        let waker = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        waker.set_nonblocking(true)?;
        waker.connect(socket.local_addr()?)?;
        Ok((
            Self { socket },
            Waker {
                socket: Arc::new(waker),
            },
        ))
    }

    /// Returns when `net` is readable, a [`Waker`] woke us, or `timeout`
    /// passed (`net` `None`: only a wake-up or the timeout), and says which.
    pub fn wait(&self, net: Option<&UdpSocket>, timeout: Duration) -> Woken {
        let woken = wait_readable(&self.socket, net, timeout);
        let mut byte = [0u8; 16];
        while self.socket.recv(&mut byte).is_ok() {}
        woken
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
        let _ = self.socket.send(&[1]);
    }
}

#[cfg(unix)]
fn wait_readable(wake: &UdpSocket, net: Option<&UdpSocket>, timeout: Duration) -> Woken {
    use std::os::fd::AsRawFd;
    let pollin = |socket: &UdpSocket| libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [pollin(wake), pollin(net.unwrap_or(wake))];
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

#[cfg(not(unix))]
fn wait_readable(_wake: &UdpSocket, _net: Option<&UdpSocket>, timeout: Duration) -> Woken {
    std::thread::sleep(timeout);
    Woken::Timeout
}

#[cfg(test)]
mod tests {
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
