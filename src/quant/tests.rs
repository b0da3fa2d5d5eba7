use super::*;

#[test]
fn q4_0_hand_built_block() {
    // d = 0.5 (f16 0x3800); byte j holds value j in the low nibble and 15 - j in the high one.
    let mut bytes = vec![0x00, 0x38];
    bytes.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let mut out = [0f32; 32];
    dequantize_row(GgmlType::Q4_0, &bytes, &mut out).unwrap();
    for j in 0..16 {
        assert_eq!(out[j], (j as f32 - 8.0) * 0.5);
        assert_eq!(out[j + 16], ((15 - j) as f32 - 8.0) * 0.5);
    }
}

#[test]
fn q8_0_and_bf16_hand_built() {
    let mut bytes = vec![0x00, 0x3c]; // d = 1.0
    bytes.extend((0..32).map(|j: i32| (j - 16) as i8 as u8));
    let mut out = [0f32; 32];
    dequantize_row(GgmlType::Q8_0, &bytes, &mut out).unwrap();
    assert_eq!(out[0], -16.0);
    assert_eq!(out[31], 15.0);

    let mut one = [0f32; 2];
    dequantize_row(GgmlType::BF16, &[0x80, 0x3f, 0xc0, 0xbf], &mut one).unwrap();
    assert_eq!(one, [1.0, -1.5]);
}

#[test]
fn wrong_lengths_and_types_are_errors() {
    let mut out = [0f32; 32];
    assert!(matches!(dequantize_row(GgmlType::Q4_0, &[0; 17], &mut out), Err(Error::DataLength { .. })));
    let mut out33 = [0f32; 33];
    assert!(dequantize_row(GgmlType::Q4_0, &[0; 18], &mut out33).is_err());
    let err = dequantize_row(GgmlType::IQ2_XXS, &[0; 66], &mut [0f32; 256]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("IQ2_XXS") && msg.contains("IQ4_XS"), "{msg}");
}

#[test]
fn q3_k_scale_unpacking_matches_a_hand_computed_case() {
    // Low nibbles 1..=8 and 9..=16 (mod 16) with high 2-bit parts from bytes 8..12.
    let packed = [0x21, 0x43, 0x65, 0x87, 0xa9, 0xcb, 0xed, 0x0f, 0b11_10_01_00, 0, 0, 0];
    let s = q3_k_scales(&packed);
    // scale 0: low nibble of byte 0 (1) | bits 0-1 of byte 8 (0) << 4
    assert_eq!(s[0], 1);
    // scale 1: low nibble of byte 1 (3) | bits 0-1 of byte 9 (0) << 4
    assert_eq!(s[1], 3);
    // scale 4: low nibble of byte 4 (9) | bits 2-3 of byte 8 (1) << 4 = 25
    assert_eq!(s[4], 9 | (1 << 4));
    // scale 8: high nibble of byte 0 (2) | bits 4-5 of byte 8 (2) << 4 = 34
    assert_eq!(s[8], 2 | (2 << 4));
    // scale 12: high nibble of byte 4 (10) | bits 6-7 of byte 8 (3) << 4 = 58
    assert_eq!(s[12], 10 | (3 << 4));
}
