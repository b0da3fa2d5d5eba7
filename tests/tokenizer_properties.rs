//! Property tests: on any Unicode text, byte-level BPE round-trips (decode(encode(s)) == NFC(s) for
//! Qwen, which normalises) and no tokenizer panics.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use paritylab::gguf::Gguf;
use paritylab::tokenizer::{EncodeOptions, Tokenizer};
use proptest::prelude::*;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

fn qwen() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let bytes = common::read_reference("gguf/qwen3_realvocab.q8_0.gguf");
        Tokenizer::from_gguf(&Gguf::parse(&bytes).unwrap()).unwrap().unwrap()
    })
}

fn toys() -> &'static Vec<Tokenizer> {
    static T: OnceLock<Vec<Tokenizer>> = OnceLock::new();
    T.get_or_init(|| {
        ["gguf/qwen3_tiny_tied.f32.gguf", "gguf/llama_small.f32.gguf"]
            .iter()
            .map(|p| Tokenizer::from_gguf(&Gguf::parse(&common::read_reference(p)).unwrap()).unwrap().unwrap())
            .collect()
    })
}

/// Text drawn from everything that trips tokenizers: ASCII, whitespace runs, control characters,
/// accents (composed and not), CJK, RTL, emoji with joiners, and anything else.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9 ]{0,12}",
        "[ \t\r\n]{1,5}",
        "[\u{0}-\u{1f}\u{7f}]{1,3}",
        "[àéîõüÅ\u{301}\u{308}e]{1,6}",
        "[一-龥ぁ-んァ-ン가-힣]{1,8}",
        "[א-תء-ي]{1,6}",
        "[😀-🙏🚀👨👩👧\u{200d}\u{fe0f}]{1,6}",
        "'(s|t|re|ve|m|ll|d|S|RE)",
        "<\\|(endoftext|im_start|im_end)\\|>",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn qwen_round_trips_to_nfc(s in text()) {
        let t = qwen();
        for opts in [EncodeOptions::default(), EncodeOptions { parse_special: false, add_special: false }] {
            let ids = t.encode(&s, opts).unwrap();
            prop_assert_eq!(t.decode(&ids), s.nfc().collect::<String>());
        }
    }

    #[test]
    fn no_tokenizer_panics(s in text(), bytes in prop::collection::vec(any::<u32>(), 0..40)) {
        for t in toys() {
            let ids = t.encode(&s, EncodeOptions::default()).unwrap();
            prop_assert!(ids.iter().all(|&id| (id as usize) < t.vocab_size()));
            let _ = t.decode(&ids);
            // Decoding arbitrary ids (out of range included) never panics.
            let _ = t.decode(&bytes);
            for &id in &bytes {
                let _ = t.display_piece(id);
            }
        }
    }
}
