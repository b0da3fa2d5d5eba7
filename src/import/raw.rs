//! Tensors as a dump file holds them, before any name mapping: a name, a shape in C order
//! (outermost dimension first, like numpy and safetensors), and the values that are known.

use crate::{Error, Result};
use serde::Serialize;

/// How the values were stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RawDtype {
    F16,
    BF16,
    F32,
    F64,
}

impl RawDtype {
    pub fn name(self) -> &'static str {
        match self {
            RawDtype::F16 => "f16",
            RawDtype::BF16 => "bf16",
            RawDtype::F32 => "f32",
            RawDtype::F64 => "f64",
        }
    }

    /// Relative rounding of storing a value in this type (half an ulp at 1): f16 2^-11, bf16 2^-8,
    /// f32 2^-24, f64 2^-53.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            RawDtype::F16 => 2f64.powi(-11),
            RawDtype::BF16 => 2f64.powi(-8),
            RawDtype::F32 => 2f64.powi(-24),
            RawDtype::F64 => 2f64.powi(-53),
        }
    }
}

/// The values of a tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValues {
    /// Every element, in C order (`len == product(shape)`).
    Dense(Vec<f64>),
    /// Only some elements are known (e.g. a log that prints the first and last few of each
    /// dimension): their flat C-order indices, ascending, and their values, each rounded to within
    /// `quantum` (the printing's resolution; 0 when exact).
    Sparse { index: Vec<usize>, values: Vec<f64>, quantum: f64 },
}

impl RawValues {
    /// Number of known elements.
    pub fn known(&self) -> usize {
        match self {
            RawValues::Dense(v) => v.len(),
            RawValues::Sparse { values, .. } => values.len(),
        }
    }

    /// `(flat index, value)` of every known element.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (usize, f64)> + '_> {
        match self {
            RawValues::Dense(v) => Box::new(v.iter().copied().enumerate()),
            RawValues::Sparse { index, values, .. } => Box::new(index.iter().copied().zip(values.iter().copied())),
        }
    }

    /// All values, when every element is known.
    pub fn dense(&self) -> Option<&[f64]> {
        match self {
            RawValues::Dense(v) => Some(v),
            RawValues::Sparse { .. } => None,
        }
    }

    /// Resolution of the values beyond their storage type (printing), 0 when exact.
    pub fn quantum(&self) -> f64 {
        match self {
            RawValues::Dense(_) => 0.0,
            RawValues::Sparse { quantum, .. } => *quantum,
        }
    }
}

/// One tensor of a dump file.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub name: String,
    /// C order: outermost first.
    pub shape: Vec<usize>,
    pub dtype: RawDtype,
    pub values: RawValues,
    /// The operation that produced it, when the file says (llama.cpp's logs: `MUL_MAT`, `ROPE`).
    pub op: Option<String>,
}

impl RawTensor {
    /// A dense tensor; checks that the values fill the shape.
    pub fn dense(name: impl Into<String>, shape: Vec<usize>, dtype: RawDtype, values: Vec<f64>) -> Result<RawTensor> {
        let name = name.into();
        let n = element_count(&name, &shape)?;
        if n != values.len() {
            return Err(Error::input(format!(
                "tensor {name:?}: shape {shape:?} holds {n} values but the file has {}",
                values.len()
            )));
        }
        Ok(RawTensor { name, shape, dtype, values: RawValues::Dense(values), op: None })
    }

    /// Number of elements the shape describes.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `product(shape)`, or an error naming the tensor when it overflows.
pub fn element_count(name: &str, shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| {
        Error::input(format!("tensor {name:?}: shape {shape:?} has more elements than this machine can address"))
    })
}

/// The most values one import may hold in memory (2^28 f64 = 2 GiB), so a hostile header cannot
/// make us allocate without bound.
pub const MAX_VALUES: usize = 1 << 28;

/// Check that `more` values still fit under [`MAX_VALUES`] after `so_far`.
pub fn check_budget(what: &str, so_far: usize, more: usize) -> Result<()> {
    match so_far.checked_add(more) {
        Some(n) if n <= MAX_VALUES => Ok(()),
        _ => Err(Error::input(format!(
            "{what}: the dump would hold more than {MAX_VALUES} values in memory; dump fewer stages or positions"
        ))),
    }
}
