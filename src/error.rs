//! The one error type of the library. Every message is written for the person who dropped the file
//! into the page or ran the CLI: it names the thing (field, tensor, key), where it is (byte offset),
//! and what was expected, so they can act on it.

use std::fmt;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- GGUF container -------------------------------------------------------------------
    #[error("not a GGUF file: it starts with {found}, a GGUF file starts with the bytes \"GGUF\"")]
    BadMagic { found: String },

    #[error("GGUF version {version} is not supported: paritylab reads versions 2 and 3")]
    UnsupportedVersion { version: u32 },

    #[error("this looks like a big-endian GGUF (version field {raw:#010x}); only little-endian files are supported")]
    BigEndian { raw: u32 },

    #[error(
        "the file is truncated: {field} at byte offset {offset} needs {need} bytes, but only {available} remain \
         (file size {file_len} bytes)"
    )]
    Truncated { field: String, offset: u64, need: u64, available: u64, file_len: u64 },

    #[error(
        "{field} at byte offset {offset} is {value}, which cannot fit in the {available} bytes that remain \
         (at most {max}); the file is damaged or not a GGUF file"
    )]
    CountTooLarge { field: String, offset: u64, value: u64, max: u64, available: u64 },

    #[error("{field} at byte offset {offset} is not valid UTF-8")]
    InvalidUtf8 { field: String, offset: u64 },

    #[error("metadata key {key:?} at byte offset {offset} has unknown value type {type_id} (valid types are 0 to 12)")]
    UnknownValueType { key: String, offset: u64, type_id: u32 },

    #[error("metadata key {key:?}: arrays nested deeper than {max} levels at byte offset {offset}")]
    ArrayTooDeep { key: String, offset: u64, max: usize },

    #[error("metadata key {key:?} appears twice (second time at byte offset {offset})")]
    DuplicateKey { key: String, offset: u64 },

    #[error("general.alignment is {found}; it must be a u32 power of two between 1 and {max}")]
    BadAlignment { found: String, max: u32 },

    #[error("tensor {name:?} (info at byte offset {offset}) has {n_dims} dimensions; GGUF allows 1 to {max}")]
    BadDimCount { name: String, offset: u64, n_dims: u32, max: u32 },

    #[error("tensor {name:?} has dims {dims:?}: {why}")]
    BadDims { name: String, dims: Vec<u64>, why: String },

    #[error(
        "tensor {name:?} has unknown ggml type id {type_id}; this file may need a newer tool \
         (known ids: {known})"
    )]
    UnknownTensorType { name: String, type_id: u32, known: String },

    #[error("tensor {name:?}: its data offset {offset} is not a multiple of the file's alignment {alignment}")]
    MisalignedTensor { name: String, offset: u64, alignment: u64 },

    #[error(
        "tensor {name:?} needs bytes {start}..{end} of the file, but the file has only {file_len} bytes \
         (an incomplete download?)"
    )]
    TensorOutOfBounds { name: String, start: u64, end: u64, file_len: u64 },

    #[error("tensors {first:?} (bytes {first_start}..{first_end}) and {second:?} (bytes {second_start}..{second_end}) overlap")]
    TensorsOverlap {
        first: String,
        first_start: u64,
        first_end: u64,
        second: String,
        second_start: u64,
        second_end: u64,
    },

    #[error(
        "the GGUF header does not end within the first {read} bytes read; read more of the file \
         (the metadata of this file is at least that large)"
    )]
    HeaderBeyondPrefix { read: u64 },

    #[error("the file declares {count} {what} (at byte offset {offset}); paritylab reads at most {max}")]
    TooMany { what: String, offset: u64, count: u64, max: u64 },

    #[error("{0}")]
    Memory(String),

    #[error("only the header of this file was read; {what} needs the tensors' data")]
    HeaderOnly { what: String },

    #[error("tensor name {name:?} appears twice (second time at byte offset {offset})")]
    DuplicateTensor { name: String, offset: u64 },

    // ---- weight types ---------------------------------------------------------------------
    #[error("tensor {name:?} has type {type_name}, which paritylab cannot decode (supported: {supported})")]
    UnsupportedType { name: String, type_name: &'static str, supported: String },

    #[error("{what}: expected {expected} bytes of {type_name} data, got {got}")]
    DataLength { what: String, type_name: &'static str, expected: u64, got: u64 },

    #[error("no tensor named {name:?} in this file")]
    NoSuchTensor { name: String },

    // ---- writing ----------------------------------------------------------------------------
    #[error("cannot write GGUF: {0}")]
    Write(String),

    // ---- generic input ----------------------------------------------------------------------
    #[error("{0}")]
    Input(String),
}

impl Error {
    /// Shorthand for an input error with a free-form message.
    pub fn input(msg: impl fmt::Display) -> Self {
        Error::Input(msg.to_string())
    }
}
