//! Reading a non-blocking UDP socket, the same way on both ends.

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
