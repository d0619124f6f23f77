//! The delta-move section, bit-packed.
//!
//! Moves are most of what a busy room sends, and their numbers are small: id
//! gaps of a few (a tenth or a quarter of the entities move) and deltas of a
//! few dozen quanta per axis. Byte-aligned varints spend 8 bits on each of the
//! three; this section spends what they need:
//!
//! ```text
//! first id (varint) · x width (u8) · y width (u8) · bits
//! bits: dx₀ dy₀ | gamma(gap₁) dx₁ dy₁ | gamma(gap₂) dx₂ dy₂ | …   (LSB first)
//! ```
//!
//! Gaps are Elias-gamma coded (gap 1 is one bit, 2–3 three bits, 4–7 five);
//! each delta is zigzag coded in the section's width for its axis, the
//! narrowest that holds every delta of the section. A typical move of the
//! swarm (gap ≈ 4, |d| ≤ 33 quanta) takes 19 bits instead of 24. The record
//! count is the section's varint count, as for every other section.

use super::DecodeError;

/// A part's delta moves while it is being filled, with its exact encoded size.
///
/// A server encodes every move of every client's change set through here, so
/// the size is kept up to date per move in a few instructions rather than
/// recomputed, and each move's deltas are zigzagged once.
#[derive(Default)]
pub(super) struct DeltaMoves {
    /// `(id, zigzag(dx), zigzag(dy))`, ids increasing.
    moves: Vec<(u64, u32, u32)>,
    /// Bytes before the bits: the first id's varint and the two widths.
    head: usize,
    /// The last id pushed.
    last: u64,
    gap_bits: u64,
    width_x: u32,
    width_y: u32,
}

impl DeltaMoves {
    /// Encoded size in bytes (count excluded).
    pub fn size(&self) -> usize {
        if self.moves.is_empty() {
            return 0;
        }
        let count = self.moves.len() as u64;
        self.head + bits_bytes(self.gap_bits, count, self.width_x, self.width_y)
    }

    /// Adds a move unless that would make the section larger than `limit`
    /// bytes; returns whether it did. Ids must increase.
    #[inline]
    pub fn push_within(&mut self, id: u64, dx: i32, dy: i32, limit: usize) -> bool {
        let (zx, zy) = (zigzag(dx), zigzag(dy));
        let (wx, wy) = (self.width_x.max(width(zx)), self.width_y.max(width(zy)));
        let (head, gap_bits) = if self.moves.is_empty() {
            (varint_len(id) + 2, 0)
        } else {
            (
                self.head,
                self.gap_bits + gamma_len(id.saturating_sub(self.last)),
            )
        };
        let count = self.moves.len() as u64 + 1;
        if head + bits_bytes(gap_bits, count, wx, wy) > limit {
            return false;
        }
        if self.moves.capacity() == 0 {
            // A part holds a few hundred at most: one allocation instead of
            // a doubling series of reallocations and copies.
            self.moves.reserve(128);
        }
        self.moves.push((id, zx, zy));
        (self.head, self.last, self.gap_bits) = (head, id, gap_bits);
        (self.width_x, self.width_y) = (wx, wy);
        true
    }

    /// Appends the section (without its count) to `out`.
    pub fn write(&self, out: &mut Vec<u8>, varint: impl Fn(u64, &mut Vec<u8>)) {
        let Some(&(first, _, _)) = self.moves.first() else {
            return;
        };
        out.reserve(self.size());
        varint(first, out);
        out.push(self.width_x as u8);
        out.push(self.width_y as u8);
        let mut bits = BitWriter::new(out);
        let mut last = first;
        for (i, &(id, zx, zy)) in self.moves.iter().enumerate() {
            if i > 0 {
                bits.gamma(id - last);
            }
            bits.put(u64::from(zx), self.width_x);
            bits.put(u64::from(zy), self.width_y);
            last = id;
        }
        bits.finish();
    }

    /// The moves as pushed, deltas unzigzagged.
    #[cfg(test)]
    fn moves(&self) -> Vec<(u64, i32, i32)> {
        let moves = self.moves.iter();
        moves
            .map(|&(id, zx, zy)| (id, unzigzag(zx), unzigzag(zy)))
            .collect()
    }
}

/// Bytes of the bits of `count` moves with `gap_bits` of gaps and deltas
/// `wx` and `wy` bits wide.
fn bits_bytes(gap_bits: u64, count: u64, wx: u32, wy: u32) -> usize {
    (gap_bits + count * u64::from(wx + wy)).div_ceil(8) as usize
}

/// Reads `count` delta moves from `rest`, returning `(id, dx, dy)` with absolute ids.
pub(super) fn read(
    rest: &mut &[u8],
    count: u64,
    first_id: u64,
) -> Result<Vec<(u64, i32, i32)>, DecodeError> {
    let (wx, wy, tail): (u8, u8, &[u8]) = match **rest {
        [wx, wy, ref tail @ ..] => (wx, wy, tail),
        _ => return Err(DecodeError::Header("delta moves: missing widths")),
    };
    if wx > 32 || wy > 32 {
        return Err(DecodeError::Header("delta moves: width above 32 bits"));
    }
    // Every move takes at least one bit, so the count is checked before allocating.
    if count > tail.len() as u64 * 8 + 1 {
        return Err(DecodeError::Count(count));
    }
    let mut bits = BitReader {
        bytes: tail,
        pos: 0,
    };
    let mut moves = Vec::with_capacity(count as usize);
    let mut id = first_id;
    for i in 0..count {
        if i > 0 {
            let gap = bits.gamma()?;
            id = id.checked_add(gap).ok_or(DecodeError::IdOverflow)?;
        }
        let dx = unzigzag(bits.get(u32::from(wx))? as u32);
        let dy = unzigzag(bits.get(u32::from(wy))? as u32);
        moves.push((id, dx, dy));
    }
    *rest = &tail[bits.pos.div_ceil(8)..];
    Ok(moves)
}

fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn unzigzag(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

/// Bits needed for `v` (0 for 0).
fn width(v: u32) -> u32 {
    32 - v.leading_zeros()
}

/// Length of the Elias-gamma code of `n ≥ 1`.
fn gamma_len(n: u64) -> u64 {
    2 * u64::from(63 - n.max(1).leading_zeros()) + 1
}

fn varint_len(v: u64) -> usize {
    // bincode's varint: one byte below 251, then a marker byte and 2, 4 or 8 bytes.
    match v {
        0..=250 => 1,
        251..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Appends bits to a byte vector, least significant bit first, four bytes at
/// a time.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    /// Bits held in `acc`; below 32 between calls.
    filled: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            acc: 0,
            filled: 0,
        }
    }

    /// Appends the `bits` (≤ 32) low bits of `value`; the bits above them
    /// must be zero.
    fn put(&mut self, value: u64, bits: u32) {
        debug_assert!(bits <= 32 && value >> bits == 0);
        // `filled < 32` and `value < 2^32`: the shift cannot lose bits.
        self.acc |= value << self.filled;
        self.filled += bits;
        if self.filled >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.filled -= 32;
        }
    }

    /// Elias gamma of `n ≥ 1`: as many zeros as `n` has bits after its top
    /// one, a one, then those bits.
    fn gamma(&mut self, n: u64) {
        let n = n.max(1);
        let rest = 63 - n.leading_zeros();
        let low = n & !(1 << rest);
        if rest < 16 {
            // The usual gap: the whole code in one piece of at most 31 bits.
            self.put(((low << 1) | 1) << rest, 2 * rest + 1);
            return;
        }
        // Written in pieces of at most 32 bits.
        let mut zeros = rest;
        while zeros > 0 {
            let k = zeros.min(32);
            self.put(0, k);
            zeros -= k;
        }
        self.put(1, 1);
        if rest > 32 {
            self.put(low & u64::from(u32::MAX), 32);
            self.put(low >> 32, rest - 32);
        } else {
            self.put(low, rest);
        }
    }

    fn finish(self) {
        let bytes = self.filled.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// Reads bits written by [`BitWriter`]; every read is bounds-checked.
/// Reads the LSB-first bit stream `BitWriter` writes, a byte's worth of bits
/// at a time: a client decodes every move of every change set through it.
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

const BITS_END_EARLY: DecodeError = DecodeError::Header("delta moves: bits end early");

impl BitReader<'_> {
    /// The next `bits` (at most 64) bits as a number, first bit lowest.
    ///
    /// Reads whole little-endian words rather than a byte at a time: every
    /// received move is three of these reads, and the byte loop was most of
    /// what decoding a change set cost a client.
    fn get(&mut self, bits: u32) -> Result<u64, DecodeError> {
        let end = self.pos + bits as usize;
        if bits > 64 || end > self.bytes.len() * 8 {
            return Err(BITS_END_EARLY);
        }
        if bits == 0 {
            return Ok(0);
        }
        let (at, shift) = (self.pos / 8, (self.pos % 8) as u32);
        let mut value = self.word(at) >> shift;
        if shift + bits > 64 {
            // Straddles a ninth byte: its bits go above the first word's.
            value |= self.word(at + 8) << (64 - shift);
        }
        self.pos = end;
        Ok(if bits == 64 {
            value
        } else {
            value & ((1u64 << bits) - 1)
        })
    }

    /// The eight bytes from `at` as a little-endian word, zeros past the end.
    fn word(&self, at: usize) -> u64 {
        if let Some(chunk) = self.bytes.get(at..at + 8)
            && let Ok(word) = <[u8; 8]>::try_from(chunk)
        {
            return u64::from_le_bytes(word);
        }
        let mut word = [0u8; 8];
        let tail = self.bytes.get(at..).unwrap_or_default();
        word[..tail.len().min(8)].copy_from_slice(&tail[..tail.len().min(8)]);
        u64::from_le_bytes(word)
    }

    /// An Elias-gamma code: `n` zeros, a one, then the `n` low bits.
    fn gamma(&mut self) -> Result<u64, DecodeError> {
        let mut zeros = 0;
        loop {
            let byte = *self.bytes.get(self.pos / 8).ok_or(BITS_END_EARLY)?;
            let shift = (self.pos % 8) as u32;
            let window = u32::from(byte) >> shift;
            let run = if window == 0 {
                8 - shift
            } else {
                window.trailing_zeros()
            };
            zeros += run;
            self.pos += run as usize;
            if zeros > 63 {
                return Err(DecodeError::Header("delta moves: gamma code too long"));
            }
            if window != 0 {
                self.pos += 1; // the one that ends the zeros
                break;
            }
        }
        Ok((1 << zeros) | self.get(zeros)?)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The reader as first written, a bit at a time: the reference the
    /// word-wise one must agree with, errors included.
    struct BitByBit<'a>(&'a [u8], usize);

    impl BitByBit<'_> {
        fn bit(&mut self) -> Option<u64> {
            let byte = self.0.get(self.1 / 8)?;
            let bit = (byte >> (self.1 % 8)) & 1;
            self.1 += 1;
            Some(u64::from(bit))
        }

        fn get(&mut self, bits: u32) -> Option<u64> {
            let mut v = 0;
            for i in 0..bits {
                v |= self.bit()? << i;
            }
            Some(v)
        }

        fn gamma(&mut self) -> Option<u64> {
            let mut zeros = 0;
            while self.bit()? == 0 {
                zeros += 1;
                if zeros > 63 {
                    return None;
                }
            }
            Some((1 << zeros) | self.get(zeros)?)
        }
    }

    proptest! {
        #[test]
        fn word_wise_reading_agrees_with_bit_by_bit(
            bytes in prop::collection::vec(
                prop_oneof![Just(0u8), Just(0xff), any::<u8>()],
                0..24,
            ),
            reads in prop::collection::vec(prop::option::of(0u32..=64), 1..40),
        ) {
            let mut fast = BitReader { bytes: &bytes, pos: 0 };
            let mut slow = BitByBit(&bytes, 0);
            for read in reads {
                let (got, want) = match read {
                    Some(bits) => (fast.get(bits).ok(), slow.get(bits)),
                    None => (fast.gamma().ok(), slow.gamma()),
                };
                prop_assert_eq!(got, want);
                if want.is_none() {
                    break;
                }
                prop_assert_eq!(fast.pos, slow.1);
            }
        }
    }

    /// What the word-wise writer writes, the bit-by-bit reader reads back:
    /// gamma codes of every length (the one-piece short form and the long
    /// form) and fields of every width, across the 32-bit flushes.
    #[derive(Clone, Debug)]
    enum Write {
        Bits(u64, u32),
        Gamma(u64),
    }

    fn write_op() -> impl Strategy<Value = Write> {
        prop_oneof![
            (0u32..=32, any::<u64>()).prop_map(|(bits, v)| {
                let mask = if bits == 0 {
                    0
                } else {
                    u64::MAX >> (64 - bits)
                };
                Write::Bits(v & mask, bits)
            }),
            (0u32..64, any::<u64>()).prop_map(|(top, v)| Write::Gamma((v >> (63 - top)).max(1))),
        ]
    }

    proptest! {
        #[test]
        fn the_bit_writer_round_trips(ops in prop::collection::vec(write_op(), 0..40)) {
            let mut out = Vec::new();
            let mut writer = BitWriter::new(&mut out);
            let mut total = 0u64;
            for op in &ops {
                match *op {
                    Write::Bits(v, bits) => {
                        writer.put(v, bits);
                        total += u64::from(bits);
                    }
                    Write::Gamma(n) => {
                        writer.gamma(n);
                        total += gamma_len(n);
                    }
                }
            }
            writer.finish();
            prop_assert_eq!(out.len() as u64, total.div_ceil(8));
            let mut reader = BitByBit(&out, 0);
            for op in &ops {
                match *op {
                    Write::Bits(v, bits) => prop_assert_eq!(reader.get(bits), Some(v)),
                    Write::Gamma(n) => prop_assert_eq!(reader.gamma(), Some(n)),
                }
            }
        }
    }

    fn varint(v: u64, out: &mut Vec<u8>) {
        out.extend(bincode::encode_to_vec(v, bincode::config::standard()).unwrap());
    }

    #[test]
    fn round_trips_with_exact_sizes() {
        let cases: Vec<Vec<(u64, i32, i32)>> = vec![
            vec![(7, 0, 0)],
            vec![(1, 13, -33), (2, -1, 0), (6, 33, 12), (300, 0, -1)],
            vec![
                (0, i32::MIN, i32::MAX),
                (u64::MAX / 2, 5, -5),
                (u64::MAX - 1, 0, 1),
            ],
        ];
        for moves in cases {
            let mut section = DeltaMoves::default();
            for &(id, dx, dy) in &moves {
                // One byte short of what it would take: refused, nothing changed.
                let mut probe = 0;
                while !section.push_within(id, dx, dy, probe) {
                    probe += 1;
                }
                assert_eq!(section.size(), probe);
            }
            assert_eq!(section.moves(), moves);
            let mut out = Vec::new();
            section.write(&mut out, varint);
            assert_eq!(out.len(), section.size(), "{moves:?}");
            let (first, used): (u64, usize) =
                bincode::decode_from_slice(&out, bincode::config::standard()).unwrap();
            let mut rest = &out[used..];
            let back = read(&mut rest, moves.len() as u64, first).unwrap();
            assert_eq!(back, moves);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn swarm_moves_take_under_three_bytes() {
        let mut section = DeltaMoves::default();
        for i in 0..250u64 {
            let (dx, dy) = ((i % 67) as i32 - 33, 33 - (i % 67) as i32);
            assert!(section.push_within(i * 4, dx, dy, usize::MAX));
        }
        let per_move = section.size() as f64 / 250.0;
        assert!(per_move < 2.5, "{per_move} bytes per move");
    }

    #[test]
    fn hostile_sections_are_errors() {
        assert!(read(&mut &[][..], 1, 0).is_err());
        assert!(read(&mut &[33, 0][..], 1, 0).is_err(), "width above 32");
        assert!(read(&mut &[1, 1][..], 1, 0).is_err(), "bits end early");
        assert!(
            read(&mut &[0, 0, 0][..], 100, 0).is_err(),
            "count above bits"
        );
        // 64 zero bits then nothing: an over-long gamma code.
        assert!(read(&mut &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..], 2, 0).is_err());
    }
}
