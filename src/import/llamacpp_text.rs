//! The text llama.cpp's eval callback prints (`llama-eval-callback`, and any tool using the same
//! callback): for every graph node a header line, then (unless the type is quantized) the first and
//! last three elements of each of the three innermost dimensions and a `sum = ` line per outermost
//! index.
//!
//! Two generations of the printer exist, identical in structure:
//!
//! ```text
//! ggml_debug:                 inp_embd = (f32)   GET_ROWS(token_embd.weight{2560, 51200, 1, 1}, inp_tokens{1, 1, 1, 1}}) = {2560, 1, 1, 1}
//!                                      [
//!                                       [
//!                                        [     -0.0181,       0.0272,       0.0272, ...,      -0.0125,       0.0029,       0.0211],
//!                                       ],
//!                                      ]
//!                                      sum = 0.001200
//! ```
//!
//! and, from `common/debug.cpp` (`common_debug_cb_eval`), 4-space indentation, `   ..., ` inside a
//! row and rows ending in `  ],`. The header's last `= {ne0, ne1, ne2, ne3}` is the tensor's own
//! shape in ggml order (ne0 fastest). Per dimension d < 3, indices `0..3` and `ne[d]-3..ne[d]` are
//! printed with a `...,` marker between them when `ne[d] > 6`, otherwise all of them; every index of
//! ne3 is printed. The parser follows that rule from the header's shape, so every row and value is
//! accounted for, and only the printed elements are ever stored.

use super::raw::{check_budget, element_count, RawDtype, RawTensor, RawValues};
use crate::{Error, Result};

/// How many leading and trailing indices the callback prints per dimension.
const N_EDGE: usize = 3;

/// `%12.4f` rounds to 4 decimals: a printed value is within half of 1e-4 of the real one.
const PRINT_QUANTUM: f64 = 0.00005;

/// The callback functions whose name starts a header line.
const MARKERS: [&str; 2] = ["common_debug_cb_eval: ", "ggml_debug: "];

/// Reads every tensor printed in an eval-callback log, in order of appearance. Names repeat (a
/// projection, its reshape and its RoPE output are all `Qcur-0`): all are kept, with their `op`.
/// Lines that are neither a tensor header nor part of a tensor's data block (loading logs, timings)
/// are skipped.
pub fn read_eval_callback_log(text: &str) -> Result<Vec<RawTensor>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut reader = Reader { lines: &lines, pos: 0 };
    let mut out = Vec::new();
    let mut budget = 0usize;
    while let Some((no, line)) = reader.next_line() {
        match parse_header(line) {
            None => {
                if is_data_line(line.trim()) {
                    return Err(Error::input(format!(
                        "llama.cpp log line {no}: a tensor data line ({}) outside any tensor block: the header line \
                         before it is missing or damaged",
                        show(line.trim())
                    )));
                }
            }
            Some(Err(msg)) => {
                return Err(Error::input(format!("llama.cpp log line {no}: {msg}: {}", show(line.trim()))));
            }
            Some(Ok(h)) => {
                let shape: Vec<usize> = h.ne.iter().rev().copied().collect();
                element_count(&h.name, &shape).map_err(|e| Error::input(format!("llama.cpp log line {no}: {e}")))?;
                let (dtype, printed) = type_info(&h.ty);
                let (index, values) = if printed {
                    let mut block = Block { h: &h, header_line: no, index: Vec::new(), values: Vec::new() };
                    block.read(&mut reader, &mut budget)?;
                    (block.index, block.values)
                } else {
                    (Vec::new(), Vec::new())
                };
                out.push(RawTensor {
                    name: h.name,
                    shape,
                    dtype,
                    values: RawValues::Sparse { index, values, quantum: PRINT_QUANTUM },
                    op: Some(h.op),
                });
            }
        }
    }
    Ok(out)
}

/// What a header line says.
#[derive(Debug)]
struct Header {
    name: String,
    ty: String,
    op: String,
    /// ggml order: ne0 (fastest) first.
    ne: [usize; 4],
}

/// `(storage dtype, whether the values are printed)` for a ggml type name. The callback prints
/// every non-quantized type (integers are converted to float); quantized ones have no data block.
fn type_info(ty: &str) -> (RawDtype, bool) {
    match ty {
        "f16" => (RawDtype::F16, true),
        "bf16" => (RawDtype::BF16, true),
        "f32" | "f64" | "i8" | "i16" | "i32" | "i64" => (RawDtype::F32, true),
        _ => (RawDtype::F32, false),
    }
}

/// `None` when the line is not a tensor header; `Some(Err)` when it looks like one but cannot be
/// read (so a damaged header is never skipped silently).
fn parse_header(line: &str) -> Option<std::result::Result<Header, String>> {
    let body = line.trim_end();
    let marker_end = MARKERS.iter().filter_map(|m| body.find(m).map(|at| at + m.len())).min();
    let looks_like = body.ends_with('}') && body.contains(" = (") && body.contains(") = {") && body.contains(": ");
    if marker_end.is_none() && !looks_like {
        return None;
    }
    Some(parse_header_fields(body, marker_end))
}

fn parse_header_fields(body: &str, marker_end: Option<usize>) -> std::result::Result<Header, String> {
    const SHAPE: &str = "a header line ending in the tensor's shape ` = {ne0, ne1, ne2, ne3}`";
    let ne_at = body.rfind("= {").ok_or_else(|| format!("expected {SHAPE}"))?;
    let ne_text = body.get(ne_at + 3..).and_then(|t| t.strip_suffix('}')).ok_or_else(|| format!("expected {SHAPE}"))?;
    let ne = parse_ne(ne_text)?;

    // `<name> = (<type>) <op>(<sources>)` before the shape.
    let head = body.get(..ne_at).unwrap_or_default().trim_end();
    let head = head.strip_suffix(')').ok_or_else(|| "expected `<op>(<sources>)` before ` = {...}`".to_string())?;
    let search_from = marker_end.unwrap_or(0);
    let type_at = body
        .get(search_from..)
        .and_then(|t| t.find(" = ("))
        .map(|at| at + search_from)
        .filter(|&at| at < head.len())
        .ok_or_else(|| "expected `<name> = (<type>)` after the function name".to_string())?;
    let name_start = match marker_end {
        Some(m) => m,
        None => head.get(..type_at).and_then(|t| t.rfind(": ")).map(|at| at + 2).ok_or("expected `<function>: `")?,
    };
    let name = head.get(name_start..type_at).unwrap_or_default().trim().to_string();
    let rest = head.get(type_at + 4..).unwrap_or_default();
    let close = rest.find(')').ok_or("expected `(<type>)` after the name")?;
    let ty = rest.get(..close).unwrap_or_default().trim();
    if ty.is_empty() || !ty.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("expected a ggml type name such as f32 in `(<type>)`, found {ty:?}"));
    }
    let rest = rest.get(close + 1..).unwrap_or_default().trim_start();
    let open = rest.find('(').ok_or("expected `<op>(<sources>)` after the type")?;
    let op = rest.get(..open).unwrap_or_default().trim();
    if op.is_empty() || op.chars().any(char::is_whitespace) {
        return Err(format!("expected an operation name such as MUL_MAT before `(`, found {op:?}"));
    }
    let sources = rest.get(open + 1..).unwrap_or_default();
    if !sources.ends_with('}') {
        return Err("expected the sources `(<src0>{...}, <src1>{...}})` after the operation".into());
    }
    Ok(Header { name, ty: ty.to_string(), op: op.to_string(), ne })
}

fn parse_ne(text: &str) -> std::result::Result<[usize; 4], String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() != 4 {
        return Err(format!("expected 4 dimensions in the shape `{{ne0, ne1, ne2, ne3}}`, found {{{text}}}"));
    }
    let mut ne = [0usize; 4];
    for (slot, part) in ne.iter_mut().zip(&parts) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("shape dimension {part:?} in {{{text}}} is not a non-negative integer"));
        }
        *slot = part.parse().map_err(|_| format!("shape dimension {part} in {{{text}}} is too large"))?;
    }
    Ok(ne)
}

/// A line of a data block (the trimmed text).
fn is_data_line(t: &str) -> bool {
    matches!(t, "[" | "]" | "]," | "...," | "...")
        || t.starts_with("sum =")
        || (t.starts_with('[') && (t.ends_with("],") || t.ends_with(']')))
}

struct Reader<'a> {
    lines: &'a [&'a str],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// The next line and its 1-based number.
    fn next_line(&mut self) -> Option<(usize, &'a str)> {
        let line = self.lines.get(self.pos)?;
        self.pos += 1;
        Some((self.pos, line))
    }
}

/// The printed indices of one dimension of size `ne`, with `None` where the printer puts `...`.
fn printed(ne: usize) -> Vec<Option<usize>> {
    if ne > 2 * N_EDGE {
        let mut v: Vec<Option<usize>> = (0..N_EDGE).map(Some).collect();
        v.push(None);
        v.extend((ne - N_EDGE..ne).map(Some));
        v
    } else {
        (0..ne).map(Some).collect()
    }
}

/// The data block of one tensor being read.
struct Block<'h> {
    h: &'h Header,
    header_line: usize,
    index: Vec<usize>,
    values: Vec<f64>,
}

impl Block<'_> {
    fn err(&self, no: usize, msg: impl std::fmt::Display) -> Error {
        let [a, b, c, d] = self.h.ne;
        Error::input(format!(
            "llama.cpp log line {no}: tensor {:?} (header at line {}, ne = {{{a}, {b}, {c}, {d}}}): {msg}",
            self.h.name, self.header_line
        ))
    }

    /// The next line that belongs to the block (trimmed), skipping blank lines and interleaved log
    /// lines; `what` says what is expected, for the error when the block ends early.
    fn next<'a>(&self, r: &mut Reader<'a>, what: &str) -> Result<(usize, &'a str)> {
        loop {
            let Some((no, line)) = r.next_line() else {
                return Err(self.err(r.lines.len(), format!("the log ends while {what} is expected")));
            };
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            if parse_header(line).is_some() {
                return Err(self.err(
                    no,
                    format!(
                        "found the next tensor's header while {what} is expected: this tensor's data is incomplete"
                    ),
                ));
            }
            // A log line from elsewhere (`ggml_backend_...: ...`): data lines start with `[`, `]`,
            // `...` or `sum`.
            let starts_word = t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
            if starts_word && !t.starts_with("sum") {
                continue;
            }
            return Ok((no, t));
        }
    }

    fn expect(&self, r: &mut Reader<'_>, what: &str, ok: impl Fn(&str) -> bool) -> Result<()> {
        let (no, t) = self.next(r, what)?;
        if ok(t) {
            Ok(())
        } else {
            Err(self.err(no, format!("expected {what}, found {}", show(t))))
        }
    }

    fn read(&mut self, r: &mut Reader<'_>, budget: &mut usize) -> Result<()> {
        let [ne0, ne1, ne2, ne3] = self.h.ne;
        let is_open = |t: &str| t == "[";
        let is_close = |t: &str| t == "]" || t == "],";
        let is_gap = |t: &str| t == "...," || t == "...";
        let cols = printed(ne0);
        for i3 in 0..ne3 {
            self.expect(r, &format!("`[` opening i3 = {i3}"), is_open)?;
            for i2 in printed(ne2) {
                let Some(i2) = i2 else {
                    self.expect(r, &format!("`...,` skipping i2 = {N_EDGE}..{}", ne2 - N_EDGE), is_gap)?;
                    continue;
                };
                self.expect(r, &format!("`[` opening i2 = {i2} (of i3 = {i3})"), is_open)?;
                for i1 in printed(ne1) {
                    let Some(i1) = i1 else {
                        self.expect(r, &format!("`...,` skipping rows i1 = {N_EDGE}..{}", ne1 - N_EDGE), is_gap)?;
                        continue;
                    };
                    let what = format!("the row i3 = {i3}, i2 = {i2}, i1 = {i1}");
                    let (no, t) = self.next(r, &what)?;
                    self.row(no, t, &what, &cols, [i3, i2, i1], budget)?;
                }
                self.expect(r, &format!("`],` closing i2 = {i2} (of i3 = {i3})"), is_close)?;
            }
            self.expect(r, &format!("`]` closing i3 = {i3}"), is_close)?;
            let what = format!("`sum = <number>` after i3 = {i3}");
            let (no, t) = self.next(r, &what)?;
            let sum = t.strip_prefix("sum").map(str::trim_start).and_then(|s| s.strip_prefix('=')).map(str::trim);
            if sum.and_then(parse_value).is_none() {
                return Err(self.err(no, format!("expected {what}, found {}", show(t))));
            }
        }
        Ok(())
    }

    /// One row `[v, v, v, ..., v, v, v],`: its values must be exactly the printed columns.
    fn row(
        &mut self,
        no: usize,
        t: &str,
        what: &str,
        cols: &[Option<usize>],
        [i3, i2, i1]: [usize; 3],
        budget: &mut usize,
    ) -> Result<()> {
        let inner = t
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(',').unwrap_or(s).strip_suffix(']'))
            .ok_or_else(|| self.err(no, format!("expected {what} as `[v, v, ...],`, found {}", show(t))))?;
        let tokens: Vec<&str> =
            if inner.trim().is_empty() { Vec::new() } else { inner.split(',').map(str::trim).collect() };
        let n_values = cols.iter().filter(|c| c.is_some()).count();
        if tokens.len() != cols.len() {
            let gap =
                if cols.len() > n_values { format!(" and `...` after the first {N_EDGE}") } else { String::new() };
            return Err(self.err(
                no,
                format!(
                    "{what} should print {n_values} values{gap} (ne0 = {}), found {} entries: {}",
                    self.h.ne[0],
                    tokens.len(),
                    show(t)
                ),
            ));
        }
        check_budget("llama.cpp log", *budget, n_values)?;
        let [ne0, ne1, ne2, _] = self.h.ne;
        let base = i3
            .checked_mul(ne2)
            .and_then(|x| x.checked_add(i2))
            .and_then(|x| x.checked_mul(ne1))
            .and_then(|x| x.checked_add(i1))
            .and_then(|x| x.checked_mul(ne0))
            .ok_or_else(|| self.err(no, "element index overflows"))?;
        for (col, tok) in cols.iter().zip(&tokens) {
            match col {
                None => {
                    if *tok != "..." {
                        return Err(self.err(
                            no,
                            format!("{what}: expected `...` after the first {N_EDGE} values, found {tok:?}"),
                        ));
                    }
                }
                Some(i0) => {
                    let v = parse_value(tok).ok_or_else(|| {
                        self.err(no, format!("{what}: expected a number for i0 = {i0}, found {tok:?}"))
                    })?;
                    let flat = base.checked_add(*i0).ok_or_else(|| self.err(no, "element index overflows"))?;
                    self.index.push(flat);
                    self.values.push(v);
                }
            }
        }
        *budget += n_values;
        Ok(())
    }
}

/// A number as printf's `%f` writes it, including `nan`, `-nan`, `inf`, `-inf` (and MSVC's
/// `-nan(ind)`).
fn parse_value(tok: &str) -> Option<f64> {
    let t = tok.trim();
    let t = match t.find('(') {
        Some(p) if t.get(..p).is_some_and(|h| h.trim_start_matches(['-', '+']).eq_ignore_ascii_case("nan")) => {
            t.get(..p)?
        }
        _ => t,
    };
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+')) {
        return None;
    }
    t.parse::<f64>().ok()
}

/// A line for an error message, shortened.
fn show(t: &str) -> String {
    let mut s: String = t.chars().take(100).collect();
    if s.len() < t.len() {
        s.push('…');
    }
    format!("`{s}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Gen {
        /// `ggml_debug` in examples/eval-callback (printf, indent 37/38/39).
        Old,
        /// `common_debug_cb_eval` in common/debug.cpp (LOG, 4-space INDENT).
        New,
    }

    fn ne_str(ne: [usize; 4]) -> String {
        format!("{}, {}, {}, {}", ne[0], ne[1], ne[2], ne[3])
    }

    /// `%12.4f` as C prints it (nan/inf spelled like glibc).
    fn f12_4(v: f32) -> String {
        if v.is_nan() {
            format!("{:>12}", if v.is_sign_negative() { "-nan" } else { "nan" })
        } else if v.is_infinite() {
            format!("{:>12}", if v < 0.0 { "-inf" } else { "inf" })
        } else {
            format!("{v:12.4}")
        }
    }

    /// The header line, exactly as the printf formats write it.
    fn header(
        g: Gen,
        name: &str,
        ty: &str,
        op: &str,
        src0: (&str, [usize; 4]),
        src1: Option<(&str, [usize; 4])>,
        ne: [usize; 4],
    ) -> String {
        let src1 = src1.map(|(n, s)| format!("{n}{{{}}}", ne_str(s))).unwrap_or_default();
        match g {
            Gen::Old => format!(
                "ggml_debug: {name:>24} = ({ty}) {op:>10}({}{{{}}}, {src1}}}) = {{{}}}\n",
                src0.0,
                ne_str(src0.1),
                ne_str(ne)
            ),
            Gen::New => format!(
                "common_debug_cb_eval: {name:>24} = ({ty}) {op:>10}({}{{{}}}, {src1}}}) = {{{}}}\n",
                src0.0,
                ne_str(src0.1),
                ne_str(ne)
            ),
        }
    }

    /// The data block, following the printers' loops; `val(i0, i1, i2, i3)`.
    fn block(g: Gen, ne: [usize; 4], val: &dyn Fn(usize, usize, usize, usize) -> f32) -> String {
        let n = 3;
        let (ind1, ind2, ind3) = match g {
            Gen::Old => (" ".repeat(37), " ".repeat(38), " ".repeat(39)),
            Gen::New => ("    ".to_string(), "        ".to_string(), "            ".to_string()),
        };
        let mut s = String::new();
        let mut sum = 0f32;
        for i3 in 0..ne[3] {
            s += &format!("{ind1}[\n");
            let mut i2 = 0;
            while i2 < ne[2] {
                if i2 == n && ne[2] > 2 * n {
                    s += &format!("{ind2}..., \n");
                    i2 = ne[2] - n;
                }
                s += &format!("{ind2}[\n");
                let mut i1 = 0;
                while i1 < ne[1] {
                    if i1 == n && ne[1] > 2 * n {
                        s += &format!("{ind3}..., \n");
                        i1 = ne[1] - n;
                    }
                    s += &format!("{ind3}[");
                    let mut i0 = 0;
                    while i0 < ne[0] {
                        if i0 == n && ne[0] > 2 * n {
                            s += if g == Gen::Old { "..., " } else { "   ..., " };
                            i0 = ne[0] - n;
                        }
                        let v = val(i0, i1, i2, i3);
                        sum += v;
                        s += &f12_4(v);
                        if i0 < ne[0] - 1 {
                            s += ", ";
                        }
                        i0 += 1;
                    }
                    s += if g == Gen::Old { "],\n" } else { "  ],\n" };
                    i1 += 1;
                }
                s += &format!("{ind2}],\n");
                i2 += 1;
            }
            s += &format!("{ind1}]\n");
            s += &format!("{ind1}sum = {sum:.6}\n");
        }
        s
    }

    fn value_of(i0: usize, i1: usize, i2: usize, i3: usize) -> f32 {
        // Distinct, exactly printable at 4 decimals.
        let flat = ((i3 * 5 + i2) * 11 + i1) * 13 + i0;
        (flat % 251) as f32 * 0.125 - 15.0
    }

    /// The flat indices the printer shows, ascending, and their values.
    fn expected(ne: [usize; 4], val: &dyn Fn(usize, usize, usize, usize) -> f32) -> (Vec<usize>, Vec<f64>) {
        let shown = |n: usize| -> Vec<usize> { printed(n).into_iter().flatten().collect() };
        let (mut idx, mut vals) = (Vec::new(), Vec::new());
        for i3 in 0..ne[3] {
            for &i2 in &shown(ne[2]) {
                for &i1 in &shown(ne[1]) {
                    for &i0 in &shown(ne[0]) {
                        idx.push(((i3 * ne[2] + i2) * ne[1] + i1) * ne[0] + i0);
                        vals.push(f64::from(val(i0, i1, i2, i3)));
                    }
                }
            }
        }
        (idx, vals)
    }

    fn sparse(t: &RawTensor) -> (&[usize], &[f64], f64) {
        match &t.values {
            RawValues::Sparse { index, values, quantum } => (index, values, *quantum),
            other => panic!("expected sparse values, got {other:?}"),
        }
    }

    fn err(text: &str) -> String {
        match read_eval_callback_log(text) {
            Ok(t) => panic!("expected an error, got {t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn round_trip_both_generations_many_shapes() {
        let shapes = [
            [8, 7, 2, 1],
            [3, 2, 1, 1],
            [6, 6, 6, 1],
            [7, 7, 7, 1],
            [10, 10, 10, 2],
            [1, 1, 1, 1],
            [64, 1, 1, 1],
            [2, 9, 1, 3],
        ];
        for g in [Gen::Old, Gen::New] {
            let mut log = String::from("llama_model_loader: loaded meta data with 30 key-value pairs\n");
            for (k, &ne) in shapes.iter().enumerate() {
                log += &header(g, &format!("t-{k}"), "f32", "MUL_MAT", ("w", [ne[0], 5, 1, 1]), Some(("x", ne)), ne);
                log += &block(g, ne, &value_of);
            }
            log += "llama_perf_context_print:        load time =     123.45 ms\n";
            let tensors = read_eval_callback_log(&log).unwrap_or_else(|e| panic!("{g:?}: {e}"));
            assert_eq!(tensors.len(), shapes.len());
            for (t, ne) in tensors.iter().zip(shapes) {
                assert_eq!(t.shape, vec![ne[3], ne[2], ne[1], ne[0]]);
                assert_eq!(t.op.as_deref(), Some("MUL_MAT"));
                assert_eq!(t.dtype, RawDtype::F32);
                let (idx, vals, q) = sparse(t);
                let (want_idx, want_vals) = expected(ne, &value_of);
                assert_eq!(idx, &want_idx[..], "{g:?} {ne:?}");
                assert_eq!(vals, &want_vals[..], "{g:?} {ne:?}");
                assert_eq!(q, 0.00005);
                assert!(idx.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }

    #[test]
    fn exact_layout_of_a_row() {
        // The first row of ne = {8, 7, 2, 1}, as each generation prints it.
        let old = block(Gen::Old, [8, 7, 2, 1], &|i0, _, _, _| i0 as f32);
        let row = old.lines().nth(2).unwrap();
        assert_eq!(
            row,
            format!(
                "{}[      0.0000,       1.0000,       2.0000, ...,       5.0000,       6.0000,       7.0000],",
                " ".repeat(39)
            )
        );
        let new = block(Gen::New, [8, 7, 2, 1], &|i0, _, _, _| i0 as f32);
        let row = new.lines().nth(2).unwrap();
        assert_eq!(
            row,
            format!(
                "{}[{}, {}, {},    ..., {}, {}, {}  ],",
                " ".repeat(12),
                "      0.0000",
                "      1.0000",
                "      2.0000",
                "      5.0000",
                "      6.0000",
                "      7.0000"
            )
        );
        assert_eq!(new.lines().nth(5).unwrap(), "            ..., ");
    }

    #[test]
    fn names_ops_types_and_repeats() {
        let ne = [4, 2, 1, 1];
        let mut log = String::new();
        for g in [Gen::Old, Gen::New] {
            log += &header(
                g,
                "Qcur-0",
                "f32",
                "MUL_MAT",
                ("blk.0.attn_q.weight", [8, 4, 1, 1]),
                Some(("attn_norm-0", [8, 2, 1, 1])),
                ne,
            );
            log += &block(g, ne, &value_of);
            log += &header(g, "Qcur-0 (reshaped)", "f32", "RESHAPE", ("Qcur-0", ne), None, [2, 2, 2, 1]);
            log += &block(g, [2, 2, 2, 1], &value_of);
            log += &header(
                g,
                "Qcur-0",
                "f16",
                "ROPE",
                ("Qcur-0 (reshaped)", [2, 2, 2, 1]),
                Some(("inp_pos", [2, 1, 1, 1])),
                [2, 2, 2, 1],
            );
            log += &block(g, [2, 2, 2, 1], &value_of);
            log += &header(g, "CUDA0#inp_embd#0", "bf16", "CPY", ("inp_embd", ne), Some(("x (view)", ne)), ne);
            log += &block(g, ne, &value_of);
            log += &header(g, "blk.0.attn_q.weight (q)", "q8_0", "CPY", ("w", ne), None, [32, 2, 1, 1]);
            log += &header(g, "inp_tokens", "i32", "NONE", ("", [0, 0, 0, 0]), None, [2, 1, 1, 1]);
            log += &block(g, [2, 1, 1, 1], &|i0, _, _, _| (i0 * 1000) as f32);
            log += &header(
                g,
                "a_very_long_tensor_name_that_is_longer_than_24",
                "f32",
                "ADD",
                ("a", ne),
                Some(("b", ne)),
                [1, 1, 1, 1],
            );
            log += &block(g, [1, 1, 1, 1], &value_of);
        }
        let t = read_eval_callback_log(&log).unwrap();
        assert_eq!(t.len(), 14);
        for half in [&t[..7], &t[7..]] {
            let names: Vec<&str> = half.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    "Qcur-0",
                    "Qcur-0 (reshaped)",
                    "Qcur-0",
                    "CUDA0#inp_embd#0",
                    "blk.0.attn_q.weight (q)",
                    "inp_tokens",
                    "a_very_long_tensor_name_that_is_longer_than_24"
                ]
            );
            let ops: Vec<&str> = half.iter().map(|t| t.op.as_deref().unwrap()).collect();
            assert_eq!(ops, ["MUL_MAT", "RESHAPE", "ROPE", "CPY", "CPY", "NONE", "ADD"]);
            let dtypes: Vec<RawDtype> = half.iter().map(|t| t.dtype).collect();
            use RawDtype::*;
            assert_eq!(dtypes, [F32, F32, F16, BF16, F32, F32, F32]);
            // Quantized: no data, an empty sparse tensor of the right shape.
            assert_eq!(half[4].shape, vec![1, 1, 2, 32]);
            assert_eq!(half[4].values.known(), 0);
            assert_eq!(sparse(&half[5]).1, &[0.0, 1000.0]);
            assert_eq!(half[6].values.known(), 1);
        }
    }

    #[test]
    fn special_values_crlf_prefixes_and_interleaved_logs() {
        let specials = [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 1e10];
        let val = |i0: usize, _: usize, _: usize, _: usize| specials[i0];
        let mut log = String::from("main: build = 1 (abc)\nsystem_info: n_threads = 4\n\n");
        log += "0.01.234.567 I ";
        log += &header(Gen::New, "x", "f32", "UNARY", ("y", [6, 1, 1, 1]), None, [6, 1, 1, 1]);
        let b = block(Gen::New, [6, 1, 1, 1], &val);
        let mut lines: Vec<&str> = b.lines().collect();
        lines.insert(2, "ggml_backend_cuda_graph_compute: disabling CUDA graphs due to batch size > 1");
        log += &lines.join("\r\n");
        log += "\r\n\r\nllama_perf_context_print: eval time = 1.0 ms\n";
        let t = read_eval_callback_log(&log).unwrap();
        assert_eq!(t.len(), 1);
        let (idx, v, _) = sparse(&t[0]);
        assert_eq!(idx, &[0, 1, 2, 3, 4, 5]);
        assert!(v[0].is_nan() && v[1].is_nan());
        assert_eq!(&v[2..], &[f64::INFINITY, f64::NEG_INFINITY, 0.0, 1e10]);
        // MSVC spelling.
        assert!(parse_value("-nan(ind)").unwrap().is_nan());
        assert_eq!(parse_value("  -1.2500"), Some(-1.25));
        assert_eq!(parse_value("1.0x"), None);
        assert_eq!(parse_value(""), None);
    }

    #[test]
    fn zero_sized_dimensions() {
        for g in [Gen::Old, Gen::New] {
            // ne3 = 0: nothing printed at all; ne2 = 0: only the i3 brackets and the sum.
            let mut log = header(g, "empty3", "f32", "VIEW", ("a", [1, 1, 1, 1]), None, [4, 4, 4, 0]);
            log += &header(g, "empty2", "f32", "VIEW", ("a", [1, 1, 1, 1]), None, [4, 4, 0, 1]);
            log += &block(g, [4, 4, 0, 1], &value_of);
            log += &header(g, "after", "f32", "ADD", ("a", [1, 1, 1, 1]), None, [1, 1, 1, 1]);
            log += &block(g, [1, 1, 1, 1], &value_of);
            let t = read_eval_callback_log(&log).unwrap_or_else(|e| panic!("{g:?}: {e}"));
            assert_eq!(t.len(), 3);
            assert_eq!(t[0].values.known(), 0);
            assert_eq!(t[1].values.known(), 0);
            assert_eq!(t[2].values.known(), 1);
        }
    }

    #[test]
    fn lying_and_damaged_logs() {
        let ne = [8, 7, 2, 1];
        let good =
            header(Gen::Old, "x", "f32", "ADD", ("a", ne), Some(("b", ne)), ne) + &block(Gen::Old, ne, &value_of);

        // A header claiming ~10^18 elements: only the printed ones are stored. A row that long prints
        // like a row of ne0 = 8, so that log is consistent and read (6 values, the last at BIG - 1)...
        const BIG: usize = usize::MAX / 16; // far past memory on any target
        let huge = [BIG, 1, 1, 1];
        let log =
            header(Gen::New, "big", "f32", "ADD", ("a", huge), None, huge) + &block(Gen::New, [8, 1, 1, 1], &value_of);
        let t = read_eval_callback_log(&log).unwrap();
        assert_eq!(sparse(&t[0]).0, &[0, 1, 2, BIG - 3, BIG - 2, BIG - 1]);
        // ...but BIG rows need 6 printed rows and a `...,` line, and one is found.
        let huge = [8, BIG, 1, 1];
        let log =
            header(Gen::New, "big", "f32", "ADD", ("a", huge), None, huge) + &block(Gen::New, [8, 1, 1, 1], &value_of);
        let e = err(&log);
        assert!(e.contains("line 5") && e.contains("\"big\"") && e.contains("i1 = 1"), "{e}");
        let huge = [8, 1, 1, BIG];
        let log =
            header(Gen::New, "big", "f32", "ADD", ("a", huge), None, huge) + &block(Gen::New, [8, 1, 1, 1], &value_of);
        let e = err(&log);
        assert!(e.contains("log ends") && e.contains("i3 = 1"), "{e}");
        // Overflowing shape.
        let e = err(&header(Gen::Old, "o", "f32", "ADD", ("a", [1; 4]), None, [usize::MAX, 2, 1, 1]));
        assert!(e.contains("line 1") && e.contains("address"), "{e}");
        // Bad shapes in the header.
        let e = err("ggml_debug:                        x = (f32)        ADD(a{1, 1, 1, 1}, }) = {1, 1, 1}\n");
        assert!(e.contains("4 dimensions") && e.contains("line 1"), "{e}");
        let e = err("ggml_debug:                        x = (f32)        ADD(a{1, 1, 1, 1}, }) = {1, -1, 1, 1}\n");
        assert!(e.contains("\"-1\""), "{e}");
        let e = err("ggml_debug: garbage\n");
        assert!(e.contains("line 1"), "{e}");
        let e = err(
            "common_debug_cb_eval:                        x = (f 32)        ADD(a{1, 1, 1, 1}, }) = {1, 1, 1, 1}\n",
        );
        assert!(e.contains("type name"), "{e}");

        // Every line of the block removed in turn, and every line duplicated: always an error naming a line.
        let lines: Vec<&str> = good.lines().collect();
        for skip in 1..lines.len() {
            let mut l = lines.clone();
            l.remove(skip);
            let e = err(&l.join("\n"));
            assert!(e.contains("llama.cpp log line") && e.contains("\"x\""), "removing line {skip}: {e}");
            let mut l = lines.clone();
            l.insert(skip, lines[skip]);
            let e = err(&l.join("\n"));
            assert!(e.contains("llama.cpp log line"), "duplicating line {skip}: {e}");
        }
        // A row with a missing value, a value instead of `...`, a bad number, a missing sum.
        let replace = |from: &str, to: &str| err(&good.replacen(from, to, 1));
        assert!(good.contains("[    -15.0000,     -14.8750,"), "{good}");
        assert!(replace("     -14.8750, ", "").contains("should print 6 values"));
        assert!(replace(", ...,", ", 1.0,").contains("expected `...`"));
        assert!(replace("     -14.8750", "     -14.87x0").contains("expected a number for i0 = 1"));
        assert!(replace("sum = ", "total = ").contains("sum = <number>"));
        assert!(replace("sum = ", "sum = abc").contains("sum = <number>"));
        // Data without a header.
        let e = err(&good.lines().skip(1).collect::<Vec<_>>().join("\n"));
        assert!(e.contains("line 1") && e.contains("outside any tensor block"), "{e}");
        // Data after a quantized header.
        let e = err(&good.replacen("(f32)", "(q8_0)", 1));
        assert!(e.contains("outside any tensor block"), "{e}");
    }

    #[test]
    fn no_panic_on_any_truncation_or_mutation() {
        let mut log = String::new();
        for g in [Gen::Old, Gen::New] {
            let ne = [8, 7, 2, 1];
            log += &header(g, "Qcur-0 (reshaped)", "f16", "RESHAPE", ("Qcur-0", ne), None, ne);
            log += &block(g, ne, &value_of);
            log += &header(g, "w", "q4_K", "NONE", ("", ne), None, ne);
        }
        let bytes = log.as_bytes();
        for len in 0..=bytes.len() {
            if log.is_char_boundary(len) {
                let _ = read_eval_callback_log(&log[..len]);
            }
        }
        let mut m = bytes.to_vec();
        for i in 0..m.len() {
            for c in [b'[', b']', b',', b'.', b'=', b'{', b'}', b'(', b')', b'9', b'-', b'\n', b' ', b'x'] {
                let old = m[i];
                m[i] = c;
                if let Ok(s) = std::str::from_utf8(&m) {
                    let _ = read_eval_callback_log(s);
                }
                m[i] = old;
            }
        }
    }
}
