//! JSON helpers shared by the serialisable results. JSON has no NaN or infinity (serde_json would
//! silently write `null`), so non-finite floats are written as the strings "NaN", "inf", "-inf".

use serde::Serializer;

/// Serialise an f64 that may be non-finite.
pub fn float<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() {
        s.serialize_f64(*x)
    } else if x.is_nan() {
        s.serialize_str("NaN")
    } else if *x > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}
