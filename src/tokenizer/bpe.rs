//! Byte-level BPE: each word's bytes become GPT-2's printable stand-in characters, start as one
//! symbol each, and the adjacent pair with the best (lowest) merge rank is merged until no pair has
//! a rank (ties: leftmost first). A heap keeps it O(n log n) for long words.

use super::pretokenize::PreTokenizer;
use crate::Result;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use unicode_normalization::UnicodeNormalization;

/// GPT-2's byte -> unicode table: printable Latin-1 bytes stand for themselves, the others are
/// moved to 256 and up, so every byte is a visible character.
pub fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut n = 0;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(c).unwrap_or('\u{fffd}');
    }
    table
}

/// The inverse of [`byte_to_char`] applied to a token string. Characters outside the table (not
/// produced by byte-level BPE) keep their own UTF-8 bytes.
pub fn unicode_to_bytes(text: &str) -> Vec<u8> {
    // Every stand-in character is below U+0144: a small array inverts the table.
    static INVERSE: std::sync::OnceLock<[Option<u8>; 0x144]> = std::sync::OnceLock::new();
    let inverse = INVERSE.get_or_init(|| {
        let mut inv = [None; 0x144];
        for (b, c) in byte_to_char().iter().enumerate() {
            inv[*c as usize] = Some(b as u8);
        }
        inv
    });
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match inverse.get(c as usize).copied().flatten() {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

#[derive(Debug, Clone)]
pub struct Bpe {
    pub pre: PreTokenizer,
    /// The token of each byte's stand-in character (`None`: the vocabulary lacks it, and the byte
    /// is dropped, as HF and llama.cpp do).
    byte_token: [Option<u32>; 256],
    /// (left, right) -> (rank, merged).
    merges: HashMap<(u32, u32), (u32, u32)>,
}

impl Bpe {
    pub fn new(tokens: &[String], merges: &[String], pre: PreTokenizer) -> Bpe {
        let ids: HashMap<&str, u32> = tokens.iter().enumerate().rev().map(|(i, t)| (t.as_str(), i as u32)).collect();
        let table = byte_to_char();
        let mut byte_token = [None; 256];
        for (b, c) in table.iter().enumerate() {
            byte_token[b] = ids.get(c.encode_utf8(&mut [0; 4]) as &str).copied();
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let Some((l, r)) = m.split_once(' ') else { continue };
            let (Some(&li), Some(&ri)) = (ids.get(l), ids.get(r)) else { continue };
            let Some(&merged) = ids.get(format!("{l}{r}").as_str()) else { continue };
            merge_map.entry((li, ri)).or_insert((rank as u32, merged));
        }
        Bpe { pre, byte_token, merges: merge_map }
    }

    /// Encode one piece of text (no special tokens in it), appending ids to `out`.
    pub fn encode(&self, text: &str, cache: &mut HashMap<String, Vec<u32>>, out: &mut Vec<u32>) -> Result<()> {
        let normalized;
        let text = if self.pre.nfc {
            normalized = text.nfc().collect::<String>();
            normalized.as_str()
        } else {
            text
        };
        for word in self.pre.split(text)? {
            if let Some(ids) = cache.get(word) {
                out.extend_from_slice(ids);
                continue;
            }
            let ids = self.word(word);
            out.extend_from_slice(&ids);
            if cache.len() < 1 << 16 {
                cache.insert(word.to_string(), ids);
            }
        }
        Ok(())
    }

    /// BPE of one word.
    fn word(&self, word: &str) -> Vec<u32> {
        // Symbols in a linked list; `None` marks a byte the vocabulary has no token for.
        let mut sym: Vec<Option<u32>> = word.bytes().map(|b| self.byte_token[b as usize]).collect();
        let n = sym.len();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::new();
        let rank = |l: Option<u32>, r: Option<u32>| match (l, r) {
            (Some(l), Some(r)) => self.merges.get(&(l, r)).copied(),
            _ => None,
        };
        for i in 0..n.saturating_sub(1) {
            if let Some((rk, _)) = rank(sym[i], sym[i + 1]) {
                heap.push(Reverse((rk, i, i + 1)));
            }
        }
        while let Some(Reverse((rk, l, r))) = heap.pop() {
            // Stale entries: a side was merged away or the pair changed since.
            if !alive[l] || !alive[r] || next[l] != r {
                continue;
            }
            let Some((now, merged)) = rank(sym[l], sym[r]) else { continue };
            if now != rk {
                continue;
            }
            sym[l] = Some(merged);
            alive[r] = false;
            next[l] = next[r];
            if next[r] < n {
                prev[next[r]] = l;
            }
            if prev[l] < n {
                if let Some((rk, _)) = rank(sym[prev[l]], sym[l]) {
                    heap.push(Reverse((rk, prev[l], l)));
                }
            }
            if next[l] < n {
                if let Some((rk, _)) = rank(sym[l], sym[next[l]]) {
                    heap.push(Reverse((rk, l, next[l])));
                }
            }
        }
        (0..n).filter(|&i| alive[i]).filter_map(|i| sym[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_table_is_gpt2s() {
        let t = byte_to_char();
        assert_eq!(t[b'!' as usize], '!');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xad], 'Ń'); // soft hyphen, the last non-printable
        let distinct: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        assert_eq!(unicode_to_bytes("Ġworld"), b" world");
    }

    #[test]
    fn merges_by_rank_leftmost_first() {
        let tokens: Vec<String> = ["a", "b", "ab", "bb", "abb", "Ġ"].iter().map(|s| s.to_string()).collect();
        // "b b" outranks "a b": "abb" -> a + bb (not ab + b), then "a bb" is not a merge.
        let merges: Vec<String> = ["b b", "a b", "ab b"].iter().map(|s| s.to_string()).collect();
        let bpe = Bpe::new(&tokens, &merges, PreTokenizer::new("gpt2").unwrap());
        assert_eq!(bpe.word("abb"), [0, 3]);
        assert_eq!(bpe.word("ab"), [2]);
        // "bbb": the leftmost "b b" merges first.
        assert_eq!(bpe.word("bbb"), [3, 1]);
        // A byte without a token is dropped.
        assert_eq!(bpe.word("azb"), [0, 1]);
    }
}
