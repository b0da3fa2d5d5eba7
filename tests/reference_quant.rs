//! Dequantisation against `shared/reference/quant`: gguf-py's values (equal to llama.cpp's bit for
//! bit) for one 4 x 512 tensor of every supported type. Bit-equal, no tolerance.

mod common;

use paritylab::ggml::GgmlType;
use paritylab::gguf::Gguf;
use paritylab::quant;

#[test]
fn every_supported_type_is_bit_equal_to_the_reference() {
    let gguf_bytes = common::read_reference("quant/quant_vectors.gguf");
    let st_bytes = common::read_reference("quant/quant_vectors.safetensors");
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let g = Gguf::parse(&gguf_bytes).unwrap();
    let mut checked = Vec::new();
    for &ty in quant::SUPPORTED {
        let name = ty.name().to_lowercase();
        let t = g.tensor(&name).unwrap_or_else(|| panic!("no tensor {name}"));
        assert_eq!(t.ggml_type, ty);
        assert_eq!(t.dims, [512, 4]);
        // The raw bytes in the safetensors file are the GGUF's bytes.
        assert_eq!(st.tensor(&format!("raw.{name}")).unwrap().data(), t.data, "{name} raw bytes");
        let want = common::safetensor_f32(&st, &name);
        let got = quant::dequantize_tensor(t).unwrap();
        assert_eq!(got.len(), want.len());
        let mismatches: Vec<usize> = (0..got.len()).filter(|&i| got[i].to_bits() != want[i].to_bits()).collect();
        assert!(
            mismatches.is_empty(),
            "{name}: {} values differ, first at {}: got {} want {}",
            mismatches.len(),
            mismatches[0],
            got[mismatches[0]],
            want[mismatches[0]]
        );
        // Row by row gives the same values.
        let mut row = vec![0f32; 512];
        quant::dequantize_tensor_row(t, 3, &mut row).unwrap();
        assert_eq!(row[..], got[3 * 512..]);
        checked.push(name);
    }
    assert_eq!(checked.len(), 15);
}

#[test]
fn unsupported_types_are_named_not_panicking() {
    let mut w = paritylab::gguf::Writer::new();
    w.tensor("blk.0.attn_q.weight", GgmlType::IQ2_XXS, &[256, 2], vec![0; 132]).unwrap();
    w.tensor("tq", GgmlType::TQ2_0, &[256], vec![0; 66]).unwrap();
    let bytes = w.to_bytes().unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    for t in &g.tensors {
        let msg = quant::dequantize_tensor(t).unwrap_err().to_string();
        assert!(msg.contains(t.name) && msg.contains(t.ggml_type.name()) && msg.contains("supported: F32"), "{msg}");
        assert!(paritylab::inspect::tensor_stats(t).is_err());
    }
}

#[test]
fn quantisers_write_the_reference_bytes() {
    let st_bytes = common::read_reference("quant/quant_vectors.safetensors");
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let source = common::safetensor_f32(&st, "source");
    for &ty in quant::quantize::QUANTIZABLE {
        let name = ty.name().to_lowercase();
        let mut out = Vec::new();
        quant::quantize::quantize_row(ty, &source, &mut out).unwrap();
        let want = st.tensor(&format!("raw.{name}")).unwrap().data().to_vec();
        let first_diff = out.iter().zip(&want).position(|(a, b)| a != b);
        assert_eq!(out.len(), want.len(), "{name}");
        assert!(first_diff.is_none(), "{name}: first differing byte {first_diff:?}");
    }
}
