//! A fixed-length set of piece indexes, as peers exchange them.

/// Which pieces of a blob a peer holds (verified), one bit per piece.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitfield {
    words: Vec<u64>,
    len: u32,
}

impl Bitfield {
    /// An empty set over `len` pieces.
    pub fn new(len: u32) -> Self {
        Self {
            words: vec![0; (len as usize).div_ceil(64)],
            len,
        }
    }

    /// The set holding every piece of `len`.
    pub fn full(len: u32) -> Self {
        let mut b = Self::new(len);
        for w in &mut b.words {
            *w = u64::MAX;
        }
        b.clear_tail();
        b
    }

    /// How many pieces the set ranges over.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the set ranges over no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether piece `i` is in the set; pieces past the end never are.
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Adds piece `i`; returns whether it was new. Pieces past the end are ignored.
    pub fn set(&mut self, i: u32) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.words[(i / 64) as usize] |= 1 << (i % 64);
        true
    }

    /// Removes piece `i`.
    pub fn unset(&mut self, i: u32) {
        if i < self.len {
            self.words[(i / 64) as usize] &= !(1 << (i % 64));
        }
    }

    /// The number of pieces in the set.
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// Whether every piece is in the set.
    pub fn is_full(&self) -> bool {
        self.count() == self.len
    }

    /// The pieces in the set, ascending.
    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros();
                w &= w - 1;
                Some(wi as u32 * 64 + bit)
            })
        })
    }

    /// The pieces in `self` but not in `other` (which must range over as many pieces).
    pub fn and_not(&self, other: &Bitfield) -> Bitfield {
        let mut out = self.clone();
        for (w, o) in out.words.iter_mut().zip(&other.words) {
            *w &= !o;
        }
        out
    }

    /// Keeps only the pieces also in `other`.
    pub fn intersect(&mut self, other: &Bitfield) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= o;
        }
    }

    /// The wire form: bit `i` is bit `i % 8` of byte `i / 8`, little-endian within the
    /// words, so the length is `ceil(len / 8)` bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = (self.len as usize).div_ceil(8);
        self.words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(n)
            .collect()
    }

    /// Reads the wire form for a blob of `len` pieces; `None` if the length is wrong or a bit
    /// past the end is set.
    pub fn from_bytes(len: u32, bytes: &[u8]) -> Option<Self> {
        if bytes.len() != (len as usize).div_ceil(8) {
            return None;
        }
        let mut b = Self::new(len);
        for (i, chunk) in bytes.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            b.words[i] = u64::from_le_bytes(word);
        }
        let before = b.words.clone();
        b.clear_tail();
        (b.words == before).then_some(b)
    }

    fn clear_tail(&mut self) {
        let rem = self.len % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << rem) - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn the_wire_form_round_trips(len in 0u32..300, picks in proptest::collection::vec(0u32..300, 0..80)) {
            let mut b = Bitfield::new(len);
            for p in &picks {
                b.set(*p);
            }
            let back = Bitfield::from_bytes(len, &b.to_bytes()).expect("valid");
            prop_assert_eq!(&back, &b);
            prop_assert_eq!(b.ones().count() as u32, b.count());
            prop_assert!(b.ones().all(|i| i < len && picks.contains(&i)));
        }
    }

    #[test]
    fn full_sets_hold_exactly_their_length() {
        for len in [0, 1, 63, 64, 65, 200] {
            let b = Bitfield::full(len);
            assert_eq!(b.count(), len);
            assert!(b.is_full());
            assert!(!b.get(len));
        }
    }

    #[test]
    fn bits_past_the_end_are_refused_on_the_wire() {
        assert!(Bitfield::from_bytes(3, &[0b0000_0111]).is_some());
        assert!(Bitfield::from_bytes(3, &[0b0000_1111]).is_none());
        assert!(Bitfield::from_bytes(3, &[0, 0]).is_none());
    }
}
