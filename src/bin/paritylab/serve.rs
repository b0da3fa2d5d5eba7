//! A small static file server for the page: GET and HEAD only, files under one folder, no caching,
//! the right MIME types (`application/wasm` for streaming compilation) and, unless turned off, the
//! cross-origin isolation headers (COOP/COEP) that `SharedArrayBuffer`, and so the threaded wasm
//! build, need. Every response carries the page's Content-Security-Policy. One thread per
//! connection; loopback by default.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// The page's Content-Security-Policy, exactly as `www/index.html` states it in its
/// `<meta http-equiv="Content-Security-Policy">` (a test checks they match; `./build.sh dist`
/// copies the meta's policy into `_headers`). No inline script and no eval; wasm may compile;
/// workers from the page's origin and the `blob:` URLs wasm-bindgen-rayon starts its threads
/// from; fetches from the page's origin and the model URLs the page accepts (https, or http to
/// this machine: CSP cannot name an IPv6 address, so not `[::1]`).
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; \
    connect-src 'self' https: http://localhost:* http://127.0.0.1:*; style-src 'self'; img-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'none'";

/// What only a header can say (a `<meta>` policy ignores it): no site may frame the page.
const CSP_HEADER_ONLY: &str = "frame-ancestors 'none'";

/// The folders served: the page's root, and folders mounted under a URL prefix.
#[derive(Clone)]
struct Roots {
    main: PathBuf,
    mounts: Vec<(String, PathBuf)>,
}

impl Roots {
    /// The folder and the rest of the path a request target falls in.
    fn pick<'t>(&self, target: &'t str) -> (&Path, &'t str) {
        for (prefix, dir) in &self.mounts {
            if let Some(rest) = target.strip_prefix('/').and_then(|t| t.strip_prefix(prefix.as_str())) {
                if rest.is_empty() || rest.starts_with('/') {
                    return (dir, rest);
                }
            }
        }
        (&self.main, target)
    }
}

pub fn serve(dir: &Path, mounts: &[(String, PathBuf)], host: &str, port: u16, isolate: bool) -> Result<(), String> {
    let root = dir.canonicalize().map_err(|e| format!("cannot serve {}: {e}", dir.display()))?;
    if !root.join("index.html").is_file() {
        return Err(format!("{} has no index.html; build the page first (./build.sh serve)", root.display()));
    }
    let mounts = mounts
        .iter()
        .map(|(p, d)| {
            d.canonicalize().map(|d| (p.clone(), d)).map_err(|e| format!("cannot mount {}: {e}", d.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let roots = Roots { main: root.clone(), mounts };
    let listener = TcpListener::bind((host, port)).map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!(
        "serving {} at http://{addr}/ ({})",
        root.display(),
        if isolate { "cross-origin isolated: threads on" } else { "not isolated: one thread" }
    );
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let roots = roots.clone();
        std::thread::spawn(move || {
            let _ = handle(stream, &roots, isolate);
        });
    }
    Ok(())
}

fn handle(mut stream: TcpStream, roots: &Roots, isolate: bool) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    (&mut reader).take(MAX_HEAD as u64).read_line(&mut request_line)?;
    // Drain the headers (we need none of them).
    let mut head_len = request_line.len();
    loop {
        let mut line = String::new();
        let n = (&mut reader).take(MAX_HEAD as u64).read_line(&mut line)?;
        head_len += n;
        if n == 0 || line == "\r\n" || line == "\n" || head_len > MAX_HEAD {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", b"GET or HEAD only\n", head_only, isolate);
    }
    let (root, target) = roots.pick(target);
    let Some(path) = resolve(root, target) else {
        return respond(&mut stream, "404 Not Found", "text/plain", b"not found\n", head_only, isolate);
    };
    match std::fs::File::open(&path) {
        Ok(mut file) => {
            let len = file.metadata()?.len();
            write_head(&mut stream, "200 OK", mime(&path), len, isolate)?;
            if !head_only {
                std::io::copy(&mut file, &mut stream)?;
            }
            stream.flush()
        }
        Err(_) => respond(&mut stream, "404 Not Found", "text/plain", b"not found\n", head_only, isolate),
    }
}

/// Map a request target to a file under `root`, refusing anything that would leave it.
fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let decoded = percent_decode(path)?;
    let mut out = root.to_path_buf();
    for c in Path::new(&decoded).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    if out.is_dir() {
        out.push("index.html");
    }
    // Symlinks must not lead outside the root either.
    let real = out.canonicalize().ok()?;
    real.starts_with(root).then_some(real)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    (!s.contains('\0')).then_some(s)
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "md" | "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn write_head(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    len: u64,
    isolate: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\
         Content-Security-Policy: {CSP}; {CSP_HEADER_ONLY}\r\n"
    );
    if isolate {
        head.push_str(
            "Cross-Origin-Opener-Policy: same-origin\r\nCross-Origin-Embedder-Policy: require-corp\r\n\
             Cross-Origin-Resource-Policy: same-origin\r\n",
        );
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
    isolate: bool,
) -> std::io::Result<()> {
    write_head(stream, status, content_type, body.len() as u64, isolate)?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let root = std::env::temp_dir().join(format!("paritylab-serve-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "x").unwrap();
        std::fs::write(root.join("sub/a.js"), "x").unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(resolve(&root, "/"), Some(root.join("index.html")));
        assert_eq!(resolve(&root, "/sub/a.js?v=1"), Some(root.join("sub/a.js")));
        assert_eq!(resolve(&root, "/sub/%61.js"), Some(root.join("sub/a.js")));
        assert_eq!(resolve(&root, "/../etc/passwd"), None);
        assert_eq!(resolve(&root, "/sub/%2e%2e/%2e%2e/etc/passwd"), None);
        assert_eq!(resolve(&root, "/missing"), None);
        assert_eq!(resolve(&root, "/%zz"), None);
        let roots = Roots { main: PathBuf::from("/www"), mounts: vec![("models".into(), root.join("sub"))] };
        assert_eq!(roots.pick("/models/a.js"), (root.join("sub").as_path(), "/a.js"));
        assert_eq!(roots.pick("/modelsX/a.js").0, Path::new("/www"));
        assert_eq!(roots.pick("/index.html"), (Path::new("/www"), "/index.html"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_header_policy_is_the_pages_policy() {
        let page = include_str!("../../../www/index.html");
        let meta = format!("<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">");
        assert!(page.contains(&meta), "www/index.html must carry {meta}");
        assert!(!CSP.contains('"') && !CSP.contains("frame-ancestors"));
    }
}
