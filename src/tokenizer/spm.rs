//! SentencePiece BPE as llama.cpp runs it (`llm_tokenizer_spm`): spaces become `▁`, a space is put
//! in front of text that follows nothing or a special token (`add_space_prefix`), the text starts
//! as one symbol per character, and the adjacent pair whose concatenation is the highest-scoring
//! token is merged (ties: leftmost) until no pair is a token. Characters left without a token fall
//! back to their bytes' `<0xNN>` tokens, else to the unknown token.

use super::TokenType;
use std::collections::{BinaryHeap, HashMap};

/// SentencePiece's visible space.
pub const SPACE: char = '▁';

#[derive(Debug, Clone)]
pub struct Spm {
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
    byte_tokens: [Option<u32>; 256],
    unk: Option<u32>,
    pub add_space_prefix: bool,
}

/// A candidate merge: higher score first, then leftmost.
#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// The bytes a SentencePiece token stands for: `▁` is a space, `<0xNN>` one byte.
pub fn piece_bytes(text: &str) -> Vec<u8> {
    if let Some(hex) = text.strip_prefix("<0x").and_then(|t| t.strip_suffix('>')) {
        if let Ok(b) = u8::from_str_radix(hex, 16) {
            if hex.len() == 2 {
                return vec![b];
            }
        }
    }
    text.replace(SPACE, " ").into_bytes()
}

impl Spm {
    pub fn new(
        tokens: &[String],
        scores: &[f32],
        types: &[TokenType],
        unk: Option<u32>,
        add_space_prefix: bool,
    ) -> Spm {
        let mut ids = HashMap::with_capacity(tokens.len());
        let mut byte_tokens = [None; 256];
        for (i, t) in tokens.iter().enumerate() {
            if types[i] == TokenType::Byte {
                if let [b] = piece_bytes(t)[..] {
                    byte_tokens[b as usize] = Some(i as u32);
                }
            } else if matches!(types[i], TokenType::Normal | TokenType::UserDefined) {
                ids.entry(t.clone()).or_insert(i as u32);
            }
        }
        Spm { ids, scores: scores.to_vec(), byte_tokens, unk, add_space_prefix }
    }

    /// Encode text that follows the start or a special token (`after_special`) or other text.
    pub fn encode(&self, text: &str, after_special: bool, out: &mut Vec<u32>) {
        let mut s = String::with_capacity(text.len() + 3);
        if self.add_space_prefix && after_special {
            s.push(SPACE);
        }
        s.extend(text.chars().map(|c| if c == ' ' { SPACE } else { c }));

        // Symbols: byte ranges of `s`, linked.
        let starts: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
        let n = starts.len();
        let mut range: Vec<(usize, usize)> =
            (0..n).map(|i| (starts[i], starts.get(i + 1).copied().unwrap_or(s.len()))).collect();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::new();
        let bigram = |l: usize, r: usize, range: &[(usize, usize)]| -> Option<Bigram> {
            let text = &s[range[l].0..range[r].1];
            self.ids.get(text).map(|&id| Bigram { score: self.scores[id as usize], left: l, right: r, len: text.len() })
        };
        for i in 0..n.saturating_sub(1) {
            heap.extend(bigram(i, i + 1, &range));
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (b.left, b.right);
            if !alive[l] || !alive[r] || next[l] != r || range[r].1 - range[l].0 != b.len {
                continue;
            }
            range[l].1 = range[r].1;
            alive[r] = false;
            next[l] = next[r];
            if next[r] < n {
                prev[next[r]] = l;
            }
            if prev[l] < n {
                heap.extend(bigram(prev[l], l, &range));
            }
            if next[l] < n {
                heap.extend(bigram(l, next[l], &range));
            }
        }
        for i in (0..n).filter(|&i| alive[i]) {
            let piece = &s[range[i].0..range[i].1];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = self.byte_tokens[b as usize].or(self.unk) {
                            out.push(id);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Spm {
        // ids: 0 <unk>, 1 ▁, 2 a, 3 b, 4 ▁a, 5 ab, 6 ▁ab, 7 <0xC3>, 8 <0xA9>
        let t: Vec<String> =
            ["<unk>", "▁", "a", "b", "▁a", "ab", "▁ab", "<0xC3>", "<0xA9>"].iter().map(|s| s.to_string()).collect();
        let scores = [0.0, -1.0, -2.0, -2.0, -1.5, -0.5, -0.2, 0.0, 0.0];
        let mut types = vec![TokenType::Normal; 9];
        types[0] = TokenType::Unknown;
        types[7] = TokenType::Byte;
        types[8] = TokenType::Byte;
        Spm::new(&t, &scores, &types, Some(0), true)
    }

    #[test]
    fn merges_by_score_with_space_prefix_and_byte_fallback() {
        let spm = vocab();
        let mut out = Vec::new();
        // "▁ab": "ab" (-0.5) beats "▁a" (-1.5), then "▁" + "ab" = "▁ab" (-0.2).
        spm.encode("ab", true, &mut out);
        assert_eq!(out, [6]);
        out.clear();
        spm.encode("ab", false, &mut out);
        assert_eq!(out, [5]);
        out.clear();
        // "é" has no token: its two UTF-8 bytes fall back to <0xC3><0xA9>; "z" to <unk>.
        spm.encode("é z", false, &mut out);
        assert_eq!(out, [7, 8, 1, 0]);
        assert_eq!(piece_bytes("<0xC3>"), [0xc3]);
        assert_eq!(piece_bytes("▁ab"), b" ab");
    }
}
