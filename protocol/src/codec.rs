//! A small binary codec for snapshots: little-endian integers and length-prefixed blocks.
//!
//! Snapshots are our own files (guarded by a checksum), so the format is built for speed, not
//! for evolution: bulk arrays go out as raw little-endian blocks and come back with one bounds
//! check per block. Decoding is still defensive — every length is checked against the bytes
//! that remain *before* anything is allocated, so a corrupt or hostile input costs at most its
//! own size and never panics.

use crate::ids::EventId;

/// Why snapshot content did not decode: what was wrong, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) &'static str);

/// Appends encoded values to a buffer.
#[derive(Debug, Default)]
pub(crate) struct Enc {
    pub(crate) buf: Vec<u8>,
}

impl Enc {
    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A count or length (always 8 bytes, so readers can bound it before allocating).
    pub(crate) fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.raw(bytes);
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub(crate) fn id(&mut self, id: &EventId) {
        self.raw(&id.0);
    }

    /// A length-prefixed block of `u32`s.
    pub(crate) fn u32s(&mut self, v: &[u32]) {
        self.len(v.len());
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.u32(*x);
        }
    }
}

/// Reads encoded values from a byte slice, refusing to read or allocate past its end.
#[derive(Debug)]
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        if n > self.buf.len() {
            return Err(Corrupt("truncated content"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Corrupt> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Corrupt> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Corrupt> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Corrupt> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A count of elements that take at least `min_elem_bytes` each: refused unless that many
    /// could still follow, which bounds every allocation by the input size.
    pub(crate) fn count(&mut self, min_elem_bytes: usize) -> Result<usize, Corrupt> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| Corrupt("count out of range"))?;
        match n.checked_mul(min_elem_bytes.max(1)) {
            Some(need) if need <= self.buf.len() => Ok(n),
            _ => Err(Corrupt("count larger than the content")),
        }
    }

    /// A block of `n` elements of `elem_bytes` each.
    pub(crate) fn block(&mut self, n: usize, elem_bytes: usize) -> Result<&'a [u8], Corrupt> {
        let len = n
            .checked_mul(elem_bytes)
            .ok_or(Corrupt("block size overflows"))?;
        self.take(len)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Corrupt> {
        let n = self.count(1)?;
        self.take(n)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, Corrupt> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Corrupt("a string is not UTF-8"))
    }

    pub(crate) fn id(&mut self) -> Result<EventId, Corrupt> {
        Ok(EventId(self.array()?))
    }

    pub(crate) fn u32s(&mut self) -> Result<Vec<u32>, Corrupt> {
        let n = self.count(4)?;
        Ok(le_u32s(self.block(n, 4)?))
    }
}

/// Little-endian `u32`s from a block whose length is a multiple of 4.
pub(crate) fn le_u32s(block: &[u8]) -> Vec<u32> {
    let (words, _) = block.as_chunks::<4>();
    words.iter().map(|w| u32::from_le_bytes(*w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bad_counts_are_refused() {
        let mut e = Enc::default();
        e.u8(7);
        e.u32(0xdead_beef);
        e.u64(u64::MAX);
        e.str("key");
        e.u32s(&[1, 2, 3]);
        e.id(&EventId([9; 32]));
        let mut d = Dec::new(&e.buf);
        assert_eq!(d.u8(), Ok(7));
        assert_eq!(d.u32(), Ok(0xdead_beef));
        assert_eq!(d.u64(), Ok(u64::MAX));
        assert_eq!(d.str(), Ok("key"));
        assert_eq!(d.u32s(), Ok(vec![1, 2, 3]));
        assert_eq!(d.id(), Ok(EventId([9; 32])));
        assert_eq!(d.remaining(), 0);
        assert!(d.u8().is_err());

        // A count that claims more than remains is refused before any allocation.
        let mut e = Enc::default();
        e.len(usize::MAX / 2);
        e.u32(1);
        assert!(Dec::new(&e.buf).u32s().is_err());
        assert!(Dec::new(&e.buf).bytes().is_err());
    }
}
