//! Eight f32 lanes, the width of the fixed summation order of [`crate::ops::dot`]: two `v128` on
//! wasm32 with SIMD128, two `__m128` on x86-64 (SSE2, part of the x86-64 baseline, so no runtime
//! detection), a plain array elsewhere. Lane `k` of every operation is the scalar operation on lane
//! `k`, rounded the same way (separate multiply and add, never fused), so code written with
//! [`F32x8`] produces the bits its scalar twin produces, on every platform.
//!
//! This file holds the only `unsafe` of the kernels: the intrinsics themselves.

/// Whether [`F32x8`] is backed by real vector registers in this build.
pub const VECTOR: bool = cfg!(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64"));

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub struct F32x8(v128, v128);

    impl F32x8 {
        #[inline(always)]
        pub fn zero() -> Self {
            F32x8(f32x4_splat(0.0), f32x4_splat(0.0))
        }
        #[inline(always)]
        pub fn splat(x: f32) -> Self {
            F32x8(f32x4_splat(x), f32x4_splat(x))
        }
        #[inline(always)]
        pub fn load(s: &[f32; 8]) -> Self {
            // SAFETY: `s` is 8 readable f32 (32 bytes); v128_load has no alignment requirement.
            unsafe { F32x8(v128_load(s.as_ptr().cast()), v128_load(s.as_ptr().add(4).cast())) }
        }
        #[inline(always)]
        pub fn store(self, d: &mut [f32; 8]) {
            // SAFETY: `d` is 8 writable f32; v128_store has no alignment requirement.
            unsafe {
                v128_store(d.as_mut_ptr().cast(), self.0);
                v128_store(d.as_mut_ptr().add(4).cast(), self.1);
            }
        }
        /// Eight unsigned bytes, converted exactly.
        #[inline(always)]
        pub fn from_u8(b: [u8; 8]) -> Self {
            let v = u64x2(u64::from_le_bytes(b), 0);
            let w = u16x8_extend_low_u8x16(v);
            F32x8(f32x4_convert_i32x4(u32x4_extend_low_u16x8(w)), f32x4_convert_i32x4(u32x4_extend_high_u16x8(w)))
        }
        /// Eight signed bytes, converted exactly.
        #[inline(always)]
        pub fn from_i8(b: [u8; 8]) -> Self {
            let v = u64x2(u64::from_le_bytes(b), 0);
            let w = i16x8_extend_low_i8x16(v);
            F32x8(f32x4_convert_i32x4(i32x4_extend_low_i16x8(w)), f32x4_convert_i32x4(i32x4_extend_high_i16x8(w)))
        }
        #[inline(always)]
        pub(super) fn vadd(self, o: Self) -> Self {
            F32x8(f32x4_add(self.0, o.0), f32x4_add(self.1, o.1))
        }
        #[inline(always)]
        pub(super) fn vsub(self, o: Self) -> Self {
            F32x8(f32x4_sub(self.0, o.0), f32x4_sub(self.1, o.1))
        }
        #[inline(always)]
        pub(super) fn vmul(self, o: Self) -> Self {
            F32x8(f32x4_mul(self.0, o.0), f32x4_mul(self.1, o.1))
        }
        #[inline(always)]
        pub fn lanes(self) -> [f32; 8] {
            let mut d = [0f32; 8];
            self.store(&mut d);
            d
        }
    }
}

#[cfg(all(target_arch = "x86_64", not(all(target_arch = "wasm32", target_feature = "simd128"))))]
mod imp {
    use core::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub struct F32x8(__m128, __m128);

    // SAFETY (every block below): SSE and SSE2 are part of the x86-64 baseline, so the intrinsics
    // are always available; loads and stores are the unaligned forms on arrays of the right size.
    impl F32x8 {
        #[inline(always)]
        pub fn zero() -> Self {
            unsafe { F32x8(_mm_setzero_ps(), _mm_setzero_ps()) }
        }
        #[inline(always)]
        pub fn splat(x: f32) -> Self {
            unsafe { F32x8(_mm_set1_ps(x), _mm_set1_ps(x)) }
        }
        #[inline(always)]
        pub fn load(s: &[f32; 8]) -> Self {
            unsafe { F32x8(_mm_loadu_ps(s.as_ptr()), _mm_loadu_ps(s.as_ptr().add(4))) }
        }
        #[inline(always)]
        pub fn store(self, d: &mut [f32; 8]) {
            unsafe {
                _mm_storeu_ps(d.as_mut_ptr(), self.0);
                _mm_storeu_ps(d.as_mut_ptr().add(4), self.1);
            }
        }
        /// Eight unsigned bytes, converted exactly.
        #[inline(always)]
        pub fn from_u8(b: [u8; 8]) -> Self {
            unsafe {
                let z = _mm_setzero_si128();
                let v = _mm_cvtsi64_si128(i64::from_le_bytes(b));
                let w = _mm_unpacklo_epi8(v, z);
                F32x8(_mm_cvtepi32_ps(_mm_unpacklo_epi16(w, z)), _mm_cvtepi32_ps(_mm_unpackhi_epi16(w, z)))
            }
        }
        /// Eight signed bytes, converted exactly.
        #[inline(always)]
        pub fn from_i8(b: [u8; 8]) -> Self {
            unsafe {
                let v = _mm_cvtsi64_si128(i64::from_le_bytes(b));
                // Each byte into the top of a 16-bit lane, then arithmetic shifts sign-extend.
                let w = _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
                let lo = _mm_srai_epi32(_mm_unpacklo_epi16(w, w), 16);
                let hi = _mm_srai_epi32(_mm_unpackhi_epi16(w, w), 16);
                F32x8(_mm_cvtepi32_ps(lo), _mm_cvtepi32_ps(hi))
            }
        }
        #[inline(always)]
        pub(super) fn vadd(self, o: Self) -> Self {
            unsafe { F32x8(_mm_add_ps(self.0, o.0), _mm_add_ps(self.1, o.1)) }
        }
        #[inline(always)]
        pub(super) fn vsub(self, o: Self) -> Self {
            unsafe { F32x8(_mm_sub_ps(self.0, o.0), _mm_sub_ps(self.1, o.1)) }
        }
        #[inline(always)]
        pub(super) fn vmul(self, o: Self) -> Self {
            unsafe { F32x8(_mm_mul_ps(self.0, o.0), _mm_mul_ps(self.1, o.1)) }
        }
        #[inline(always)]
        pub fn lanes(self) -> [f32; 8] {
            let mut d = [0f32; 8];
            self.store(&mut d);
            d
        }
    }
}

#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
mod imp {
    /// The portable fallback: the same lanes as a plain array.
    #[derive(Clone, Copy)]
    pub struct F32x8([f32; 8]);

    impl F32x8 {
        #[inline(always)]
        pub fn zero() -> Self {
            F32x8([0.0; 8])
        }
        #[inline(always)]
        pub fn splat(x: f32) -> Self {
            F32x8([x; 8])
        }
        #[inline(always)]
        pub fn load(s: &[f32; 8]) -> Self {
            F32x8(*s)
        }
        #[inline(always)]
        pub fn store(self, d: &mut [f32; 8]) {
            *d = self.0;
        }
        #[inline(always)]
        pub fn from_u8(b: [u8; 8]) -> Self {
            F32x8(b.map(f32::from))
        }
        #[inline(always)]
        pub fn from_i8(b: [u8; 8]) -> Self {
            F32x8(b.map(|x| f32::from(x as i8)))
        }
        #[inline(always)]
        pub(super) fn vadd(self, o: Self) -> Self {
            F32x8(std::array::from_fn(|k| self.0[k] + o.0[k]))
        }
        #[inline(always)]
        pub(super) fn vsub(self, o: Self) -> Self {
            F32x8(std::array::from_fn(|k| self.0[k] - o.0[k]))
        }
        #[inline(always)]
        pub(super) fn vmul(self, o: Self) -> Self {
            F32x8(std::array::from_fn(|k| self.0[k] * o.0[k]))
        }
        #[inline(always)]
        pub fn lanes(self) -> [f32; 8] {
            self.0
        }
    }
}

pub use imp::F32x8;

impl std::ops::Add for F32x8 {
    type Output = F32x8;
    #[inline(always)]
    fn add(self, o: F32x8) -> F32x8 {
        self.vadd(o)
    }
}

impl std::ops::Sub for F32x8 {
    type Output = F32x8;
    #[inline(always)]
    fn sub(self, o: F32x8) -> F32x8 {
        self.vsub(o)
    }
}

impl std::ops::Mul for F32x8 {
    type Output = F32x8;
    #[inline(always)]
    fn mul(self, o: F32x8) -> F32x8 {
        self.vmul(o)
    }
}

/// The 8-element chunk of `s` starting at `8 * i` as an array reference.
#[inline(always)]
pub fn chunk8(s: &[f32], i: usize) -> &[f32; 8] {
    let c = &s[8 * i..8 * i + 8];
    c.try_into().unwrap_or_else(|_| unreachable!("a slice of length 8"))
}

/// Mutable twin of [`chunk8`].
#[inline(always)]
pub fn chunk8_mut(s: &mut [f32], i: usize) -> &mut [f32; 8] {
    let c = &mut s[8 * i..8 * i + 8];
    c.try_into().unwrap_or_else(|_| unreachable!("a slice of length 8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_convert_and_round_like_scalars() {
        let bytes = [0u8, 1, 127, 128, 200, 255, 7, 9];
        assert_eq!(F32x8::from_u8(bytes).lanes(), bytes.map(f32::from));
        assert_eq!(F32x8::from_i8(bytes).lanes(), bytes.map(|b| f32::from(b as i8)));
        let a = [0.1f32, -3.5, 1e30, 7.0, 1e-30, 2.5, -0.0, 3.3];
        let b = [0.7f32, 1.25, 1e10, -7.0, 1e-20, 2.5, 5.0, 1.1];
        let (va, vb) = (F32x8::load(&a), F32x8::load(&b));
        let want = |f: fn(f32, f32) -> f32| -> [u32; 8] { std::array::from_fn(|k| f(a[k], b[k]).to_bits()) };
        assert_eq!((va * vb + va).lanes().map(f32::to_bits), want(|x, y| x * y + x));
        assert_eq!((va - vb).lanes().map(f32::to_bits), want(|x, y| x - y));
        assert_eq!((F32x8::splat(2.0) * F32x8::zero()).lanes(), [0.0; 8]);
    }
}
