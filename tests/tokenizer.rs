//! Tokenizers against references nobody here wrote: the real Qwen3 vocabulary (HF tokenizers'
//! ids), SmolLM2 (llama.cpp's ids), and the toy vocabularies of the tiny reference models.

mod common;

use paritylab::gguf::Gguf;
use paritylab::tokenizer::{EncodeOptions, Tokenizer};
use serde_json::Value as Json;

fn tokenizer_of(bytes: &[u8]) -> Tokenizer {
    Tokenizer::from_gguf(&Gguf::parse(bytes).unwrap()).unwrap().expect("a vocabulary")
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

const PLAIN: EncodeOptions = EncodeOptions { parse_special: true, add_special: false };

#[test]
fn qwen3_real_vocabulary_matches_hf_tokenizers() {
    let t = tokenizer_of(&common::read_reference("gguf/qwen3_realvocab.q8_0.gguf"));
    assert_eq!(t.vocab_size(), 151936);
    assert!(t.normalizes(), "Qwen applies NFC");
    assert!(!t.add_bos, "Qwen adds no BOS");
    let cases = common::read_json("tokenizer/qwen3_strings.json");
    let mut n = 0;
    for case in cases["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = t.encode(text, PLAIN).unwrap();
        assert_eq!(got, ids(&case["ids"]), "{text:?}");
        let split = t.encode(text, EncodeOptions { parse_special: false, add_special: false }).unwrap();
        assert_eq!(split, ids(&case["ids_split_special_tokens"]), "{text:?} with special tokens as text");
        assert_eq!(t.decode(&got), case["decoded"].as_str().unwrap(), "{text:?} decoded");
        // With the vocabulary's own BOS rule nothing is added either.
        assert_eq!(t.encode(text, EncodeOptions::default()).unwrap(), got);
        n += 1;
    }
    assert_eq!(n, 40);
}

#[test]
fn smollm2_matches_llama_cpp() {
    let t = tokenizer_of(&common::smollm2_bytes());
    assert_eq!(t.pre.as_deref(), Some("smollm"));
    assert!(!t.add_bos);
    let cases = common::read_json("smollm2/tokenize.json");
    let mut n = 0;
    for case in cases["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let name = case["name"].as_str().unwrap_or("?");
        assert_eq!(t.encode(text, EncodeOptions::default()).unwrap(), ids(&case["llamacpp_ids"]), "{name}: {text:?}");
        assert_eq!(
            t.encode(text, PLAIN).unwrap(),
            ids(&case["llamacpp_ids_add_special_false"]),
            "{name}: {text:?} without BOS/EOS"
        );
        if let Some(want) = case.get("llamacpp_ids_parse_special_false") {
            let got = t.encode(text, EncodeOptions { parse_special: false, add_special: true }).unwrap();
            assert_eq!(got, ids(want), "{name}: {text:?} with special tokens as text");
        }
        n += 1;
    }
    assert_eq!(n, 30);
}

#[test]
fn toy_vocabularies_of_the_tiny_models_match_hf() {
    let cases = common::read_json("tokenizers/toy_cases.json");
    let manifest = common::read_json("manifest.json");
    let mut checked = 0;
    for (toy, list) in cases["cases"].as_object().unwrap() {
        // Every reference GGUF that embeds this toy vocabulary.
        let models: Vec<String> = manifest["models"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, m)| m["tokenizer"] == toy.as_str())
            .flat_map(|(_, m)| {
                m["gguf"].as_object().unwrap().values().map(|p| p.as_str().unwrap().to_string()).collect::<Vec<_>>()
            })
            .collect();
        assert!(!models.is_empty(), "no model uses {toy}");
        for path in models {
            let t = tokenizer_of(&common::read_reference(&path));
            for case in list.as_array().unwrap() {
                let text = case["text"].as_str().unwrap();
                assert_eq!(t.encode(text, PLAIN).unwrap(), ids(&case["ids"]), "{path}: {text:?}");
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}
