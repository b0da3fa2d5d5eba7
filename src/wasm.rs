//! The thin JavaScript surface of the engine: a [`Session`] owning one loaded GGUF file, used by the
//! page's module worker. Results cross the boundary as plain JSON-shaped objects (the same JSON the
//! CLI prints), errors as JS `Error`s with the library's messages.

use crate::gguf::Gguf;
use crate::{inspect, synth};
use wasm_bindgen::prelude::*;

#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

self_cell::self_cell!(
    /// The file's bytes and the parsed view borrowing them.
    struct Loaded {
        owner: Vec<u8>,
        #[covariant]
        dependent: Gguf,
    }
);

/// One loaded model.
#[wasm_bindgen]
pub struct Session {
    loaded: Option<Loaded>,
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// A serialisable value as a plain JS object (via JSON, so 64-bit integers and maps behave exactly
/// as in `paritylab ... --json`).
fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    let text = serde_json::to_string(value).map_err(js_error)?;
    js_sys::JSON::parse(&text).map_err(|_| JsError::new("internal error: result is not valid JSON"))
}

#[wasm_bindgen]
impl Session {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Session {
        Session { loaded: None }
    }

    /// Parse a GGUF file and keep it. Returns the same description as `paritylab inspect --json`.
    /// On error the previously loaded file (if any) is dropped.
    pub fn load(&mut self, bytes: Vec<u8>) -> Result<JsValue, JsError> {
        self.loaded = None;
        let loaded = Loaded::try_new(bytes, |b| Gguf::parse(b)).map_err(js_error)?;
        let info = to_js(&inspect::inspect(loaded.borrow_dependent()))?;
        self.loaded = Some(loaded);
        Ok(info)
    }

    /// Generate a synthetic model from its text spec (see `synth`), load it, and return its
    /// description. `spec` empty means the source issue's reproducer.
    pub fn load_synthetic(&mut self, spec: &str) -> Result<JsValue, JsError> {
        let spec = synth::SynthSpec::parse(spec).map_err(js_error)?;
        let bytes = synth::generate(&spec).map_err(js_error)?;
        self.load(bytes)
    }

    /// The loaded file's bytes (e.g. to download a synthetic model).
    pub fn file_bytes(&self) -> Result<Vec<u8>, JsError> {
        Ok(self.file()?.borrow_owner().clone())
    }

    /// Value statistics (min, max, mean, std, NaN/Inf counts, histogram) of one tensor.
    pub fn tensor_stats(&self, name: &str) -> Result<JsValue, JsError> {
        let g = self.file()?.borrow_dependent();
        let t = g.require_tensor(name).map_err(js_error)?;
        to_js(&inspect::tensor_stats(t).map_err(js_error)?)
    }

    fn file(&self) -> Result<&Loaded, JsError> {
        self.loaded.as_ref().ok_or_else(|| JsError::new("no model is loaded"))
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

/// What this build is: `{ version, simd, threads_build, threads }` where `threads` is the size of
/// the rayon pool actually running.
#[wasm_bindgen]
pub fn build_info() -> Result<JsValue, JsError> {
    to_js(&serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "simd": cfg!(target_feature = "simd128"),
        "threads_build": cfg!(feature = "threads"),
        "threads": rayon::current_num_threads(),
    }))
}

/// Run one task on every thread of the pool and return the distinct thread indices that ran it
/// (proof that the pool is really parallel).
#[wasm_bindgen]
pub fn pool_thread_indices() -> Vec<u32> {
    let mut ids: Vec<u32> = rayon::broadcast(|ctx| ctx.index() as u32);
    ids.sort_unstable();
    ids.dedup();
    ids
}
