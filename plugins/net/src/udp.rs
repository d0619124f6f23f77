//! Reading a non-blocking UDP socket, the same way on both ends, and sizing
//! its kernel buffers.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// The next datagram waiting on `socket`, read into `buffer`: its length and
/// sender, or `None` when nothing is waiting. A bounced earlier send (ICMP
/// port unreachable, which some systems report on the next read) is skipped:
/// it is not this read's business.
pub(crate) fn recv(
    socket: &UdpSocket,
    buffer: &mut [u8],
) -> io::Result<Option<(usize, SocketAddr)>> {
    loop {
        match socket.recv_from(buffer) {
            Ok(read) => return Ok(Some(read)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Kernel buffer sizes of a socket, in bytes, as the kernel reports them
/// (Linux reports twice what it grants: the other half is its bookkeeping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SocketBuffers {
    /// The receive buffer.
    pub recv: usize,
    /// The send buffer.
    pub send: usize,
}

/// Asks the kernel for `recv` and `send` bytes of buffer on `socket` (`None`
/// keeps that side's default) and returns what it granted. The system default (≈ 208 KiB on Linux) holds
/// only a few hundred small datagrams: a thread that reads its socket a few
/// milliseconds late under load loses whatever arrives meanwhile. The kernel
/// caps the request (`net.core.rmem_max`/`wmem_max`); a refusal leaves the
/// default, which still works, only with less slack.
pub(crate) fn request_buffers(
    socket: &UdpSocket,
    recv: Option<usize>,
    send: Option<usize>,
) -> SocketBuffers {
    let sock = socket2::SockRef::from(socket);
    if let Some(recv) = recv
        && let Err(e) = sock.set_recv_buffer_size(recv)
    {
        tracing::debug!("cannot set the receive buffer to {recv} bytes: {e}");
    }
    if let Some(send) = send
        && let Err(e) = sock.set_send_buffer_size(send)
    {
        tracing::debug!("cannot set the send buffer to {send} bytes: {e}");
    }
    SocketBuffers {
        recv: sock.recv_buffer_size().unwrap_or(0),
        send: sock.send_buffer_size().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn buffers_grow_as_far_as_the_kernel_allows() {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let sock = socket2::SockRef::from(&socket);
        let before = sock.recv_buffer_size().unwrap();
        let send = sock.send_buffer_size().unwrap();
        // Smaller than any default, so the answer does not depend on rmem_max.
        let small = request_buffers(&socket, Some(4096), None);
        assert!(small.recv < before, "{small:?} against {before}");
        assert_eq!(small.send, send, "the send side keeps its default");
        let large = request_buffers(&socket, Some(1 << 20), Some(1 << 20));
        assert!(large.recv >= small.recv && large.send >= small.send);
        assert_eq!(
            large.recv,
            sock.recv_buffer_size().unwrap(),
            "reports what the socket holds"
        );
    }
}
