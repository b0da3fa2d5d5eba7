use super::*;
use crate::gguf::ValueType;
use crate::gguf::{Writer, WriterValue};

/// A tiny byte-level vocabulary: all 256 byte tokens, a few merges, two special tokens.
fn toy() -> Vec<u8> {
    let table = bpe::byte_to_char();
    let mut tokens: Vec<String> = table.iter().map(|c| c.to_string()).collect();
    tokens.extend(["Ġw", "or", "ld", "Ġwor", "Ġworld", "<|end|>", "<think>"].map(String::from));
    let mut types = vec![1i32; tokens.len()];
    let n = types.len();
    types[n - 2] = 3; // CONTROL
    types[n - 1] = 4; // USER_DEFINED
    let mut w = Writer::new();
    w.metadata("tokenizer.ggml.model", WriterValue::String("gpt2".into()))
        .metadata("tokenizer.ggml.pre", WriterValue::String("qwen2".into()))
        .metadata("tokenizer.ggml.tokens", WriterValue::strings(tokens))
        .metadata(
            "tokenizer.ggml.token_type",
            WriterValue::Array(ValueType::I32, types.into_iter().map(WriterValue::I32).collect()),
        )
        .metadata("tokenizer.ggml.merges", WriterValue::strings(["Ġ w", "o r", "l d", "Ġw or", "Ġwor ld"]))
        .metadata("tokenizer.ggml.eos_token_id", WriterValue::U32(261));
    w.to_bytes().unwrap()
}

#[test]
fn specials_split_first_longest_and_respect_parse_special() {
    let bytes = toy();
    let g = crate::gguf::Gguf::parse(&bytes).unwrap();
    let t = Tokenizer::from_gguf(&g).unwrap().unwrap();
    let on = EncodeOptions { parse_special: true, add_special: false };
    let off = EncodeOptions { parse_special: false, add_special: false };
    assert_eq!(t.encode(" world", on).unwrap(), [260]);
    assert_eq!(t.encode("a<|end|> world", on).unwrap(), [b'a' as u32, 261, 260]);
    // As plain text the control token is its characters; the user-defined one still splits out.
    let plain = t.encode("<|end|>", off).unwrap();
    assert!(plain.len() > 1 && !plain.contains(&261));
    assert_eq!(t.encode("<think>", off).unwrap(), [262]);
    assert_eq!(t.decode(&t.encode("a<|end|> world<think>x", on).unwrap()), "a<|end|> world<think>x");
    assert!(!t.normalizes() || t.pre.as_deref() == Some("qwen2"));
}

#[test]
fn decode_shows_invalid_utf8_as_replacement_and_pieces_visibly() {
    let bytes = toy();
    let g = crate::gguf::Gguf::parse(&bytes).unwrap();
    let t = Tokenizer::from_gguf(&g).unwrap().unwrap();
    let ids = t.encode("é", EncodeOptions::default()).unwrap();
    assert_eq!(ids.len(), 2, "two byte tokens");
    assert_eq!(t.decode(&ids[..1]), "\u{fffd}");
    assert_eq!(t.display_piece(ids[0]), "\\xc3");
    assert_eq!(t.display_piece(260), "␣world");
    assert_eq!(t.display_piece(b'\n' as u32), "↵");
    assert_eq!(t.display_piece(261), "<|end|>");
    assert_eq!(visible(b"a\tb\x01"), "a⇥b\\x01");
}

#[test]
fn files_without_or_with_bad_vocabularies() {
    let empty = Writer::new().to_bytes().unwrap();
    assert!(Tokenizer::from_gguf(&crate::gguf::Gguf::parse(&empty).unwrap()).unwrap().is_none());
    let mut w = Writer::new();
    w.metadata("tokenizer.ggml.model", WriterValue::String("bert".into()))
        .metadata("tokenizer.ggml.tokens", WriterValue::strings(["a"]));
    let bytes = w.to_bytes().unwrap();
    let e = Tokenizer::from_gguf(&crate::gguf::Gguf::parse(&bytes).unwrap()).unwrap_err().to_string();
    assert!(e.contains("\"bert\"") && e.contains("gpt2"), "{e}");
    let mut w = Writer::new();
    w.metadata("tokenizer.ggml.model", WriterValue::String("gpt2".into()))
        .metadata("tokenizer.ggml.pre", WriterValue::String("mystery".into()))
        .metadata("tokenizer.ggml.tokens", WriterValue::strings(["a"]));
    let bytes = w.to_bytes().unwrap();
    let e = Tokenizer::from_gguf(&crate::gguf::Gguf::parse(&bytes).unwrap()).unwrap_err().to_string();
    assert!(e.contains("\"mystery\"") && e.contains("smollm"), "{e}");
}
