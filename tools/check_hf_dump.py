#!/usr/bin/env python3
"""By-hand check of tools/hf_dump.py against the shared reference data (too heavy for CI: torch).

Runs hf_dump.py (as a subprocess, through its CLI) for every model in <ref>/hf/ and every sequence in
<ref>/refs/<model>/, and for the f32 GGUFs of llama_small and qwen3_tiny_untied, then compares every
stage with the reference's `f32.` tensor: max|got - ref| / max|ref|. kq has no reference: it is checked
by softmax(kq, causal) == kq_softmax. For llama, q/k/q_rope/k_rope permuted to GGUF order are also
checked against the `*_gguf_order` copies (that is what `qk_row_order` = `hf` asks paritylab to do).
With --f64 it also runs --dtype f64 and compares with the `f64.` ground truth (information only:
HF's float32 islands remain, see hf_dump.py).

Use: /path/to/venv/bin/python tools/check_hf_dump.py [--ref ../shared/reference] [--f64] [--keep DIR]
Exit status 0 when every check is within its tolerance.
"""

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
DUMP = os.path.join(HERE, "hf_dump.py")

# dump stage -> reference name (per layer stages get "layers.{i}." in front)
GLOBAL = {"tok_embd": "embed", "result_norm": "final_norm", "result_output": "logits"}
PER_LAYER = {
    "attn_norm": "input_layernorm",
    "q": "attn.q_proj",
    "k": "attn.k_proj",
    "v": "attn.v_proj",
    "q_normed": "attn.q_norm",
    "k_normed": "attn.k_norm",
    "q_rope": "attn.q_rope",
    "k_rope": "attn.k_rope",
    "kq_softmax": "attn.probs",
    "kqv": "attn.pre_o_proj",
    "attn_out": "attn.o_proj",
    "ffn_inp": "attn_residual",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_silu": "mlp.act_gate",
    "ffn_act": "mlp.act_mul_up",
    "ffn_out": "mlp.down_proj",
    "l_out": "output",
}
QK_GGUF = {"q": "attn.q_proj_gguf_order", "k": "attn.k_proj_gguf_order",
           "q_rope": "attn.q_rope_gguf_order", "k_rope": "attn.k_rope_gguf_order"}

# the brief asks for llama_small and qwen3_tiny_untied; the other f32 GGUFs are checked too
GGUF_MODELS = ("llama_small", "qwen3_tiny_untied", "qwen2_small", "qwen3_gqa", "qwen3_tiny_tied")

TOL_HF = 1e-6      # HF folder route: same code, same weights -> expected 0
TOL_GGUF = 1e-5    # GGUF route: same f32 weights through transformers' GGUF loader -> ~0
TOL_KQ = 1e-6      # softmax(kq) vs kq_softmax


def load(path):
    with safe_open(path, "np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}


def raw_dtypes(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}


def rel(got, ref):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.size != ref.size:
        return float("inf")
    got = got.reshape(ref.shape)
    scale = np.max(np.abs(ref))
    diff = np.max(np.abs(got - ref))
    return float(diff / scale) if scale > 0 else float(diff)


def to_gguf_order(x, n_heads):
    """llama.cpp's converter permutation applied to activations [T, heads*hd]."""
    t = x.shape[0]
    hd = x.shape[1] // n_heads
    return x.reshape(t, n_heads, 2, hd // 2).swapaxes(2, 3).reshape(t, -1)


def kq_check(kq, probs):
    """max rel err of softmax over the causal entries of kq vs kq_softmax (causal part)."""
    nh, t, tk = kq.shape
    s = kq.astype(np.float64)
    mask = np.tril(np.ones((t, tk), bool), k=tk - t)
    s = np.where(mask, s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    p = e / e.sum(-1, keepdims=True)
    return rel(np.where(mask, p, 0.0), np.where(mask, probs, 0.0))


def run_dump(python, model, ids, out, dtype="f32"):
    cmd = [python, DUMP, model, "--tokens", ",".join(map(str, ids)), "-o", out, "--dtype", dtype]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr}")


def check_one(python, model_arg, ref_path, prefix, tmp, tag, gguf_path=None, dtype="f32"):
    refs, rmeta = load(ref_path)
    ids = json.loads(rmeta["token_ids"])
    out = os.path.join(tmp, f"{tag}.safetensors")
    run_dump(python, model_arg, ids, out, dtype)
    got, meta = load(out)
    problems = []

    # --- format ---
    want_dtype = "F64" if dtype == "f64" else "F32"
    for k, d in raw_dtypes(out).items():
        if d != want_dtype:
            problems.append(f"{k} stored as {d}")
    for k, v in {"format": "paritylab-dump", "format_version": "1", "qk_row_order": "hf", "precision": dtype}.items():
        if meta.get(k) != v:
            problems.append(f"metadata {k}={meta.get(k)!r}, want {v!r}")
    if json.loads(meta.get("token_ids", "null")) != ids:
        problems.append("metadata token_ids differ from the ids run")
    if "producer" not in meta or "architecture" not in meta:
        problems.append("metadata producer/architecture missing")
    if gguf_path is not None:
        h = hashlib.sha256(open(gguf_path, "rb").read()).hexdigest()
        if meta.get("model_sha256") != h:
            problems.append("model_sha256 is not the GGUF's sha256")
    elif "model_sha256" in meta:
        problems.append("model_sha256 written for an HF folder")

    n_layers = 1 + max(int(k[len(prefix):].split(".")[1]) for k in refs if k.startswith(prefix + "layers."))
    t = len(ids)

    # --- values ---
    errs = {}
    for stage, rname in GLOBAL.items():
        errs[stage] = rel(got[stage], refs[prefix + rname]) if stage in got else None
    for i in range(n_layers):
        for stage, rname in PER_LAYER.items():
            key = f"{prefix}layers.{i}.{rname}"
            if key not in refs:
                if f"blk.{i}.{stage}" in got:
                    problems.append(f"blk.{i}.{stage} written but the model has no such stage")
                continue
            name = f"blk.{i}.{stage}"
            if name not in got:
                errs[name] = None
                continue
            if stage not in ("kq_softmax",) and got[name].shape[0] != t:
                problems.append(f"{name} shape {got[name].shape}: first dimension is not T={t}")
            errs[name] = rel(got[name], refs[key])
        name = f"blk.{i}.kq"
        if name not in got:
            errs[name] = None
        else:
            errs[name + " (softmax)"] = kq_check(got[name], got[f"blk.{i}.kq_softmax"])
        if f"{prefix}layers.{i}.{QK_GGUF['q']}" in refs:
            nh = refs[f"{prefix}layers.{i}.attn.q_rope"].shape[1]
            nkv = refs[f"{prefix}layers.{i}.attn.k_rope"].shape[1]
            for stage, rname in QK_GGUF.items():
                heads = nh if stage.startswith("q") else nkv
                errs[f"blk.{i}.{stage} (gguf order)"] = rel(to_gguf_order(got[f"blk.{i}.{stage}"], heads),
                                                            refs[f"{prefix}layers.{i}.{rname}"])
    missing = [k for k, v in errs.items() if v is None]
    if missing:
        problems.append("missing stages: " + ", ".join(missing))
    errs = {k: v for k, v in errs.items() if v is not None}
    extra = set(got) - {k.split(" ")[0] for k in errs} - {f"blk.{i}.kq" for i in range(n_layers)}
    if extra:
        problems.append("unexpected tensors: " + ", ".join(sorted(extra)))
    return errs, problems, ids


def worst(errs, pred=lambda k: True):
    items = [(v, k) for k, v in errs.items() if pred(k)]
    v, k = max(items)
    return k, v


def cli_errors(python, ref, tmp):
    """A few error paths: (description, args, expected substring)."""
    fake = os.path.join(tmp, "fake_gpt2")
    os.makedirs(fake, exist_ok=True)
    with open(os.path.join(fake, "config.json"), "w") as f:
        json.dump({"model_type": "gpt2"}, f)
    open(os.path.join(fake, "model.safetensors"), "wb").close()
    cases = [
        ("missing model", ["/nonexistent/model", "--tokens", "1"], "model not found"),
        ("bad token list", [os.path.join(ref, "hf/qwen3_gqa"), "--tokens", "1,x,3"], "not an integer"),
        ("empty token list", [os.path.join(ref, "hf/qwen3_gqa"), "--tokens", ","], "no token ids"),
        ("token out of range", [os.path.join(ref, "hf/qwen3_gqa"), "--tokens", "1,99999"], "out of range"),
        ("folder without config", [os.path.join(ref, "refs"), "--tokens", "1"], "no config.json"),
        ("not a gguf", [os.path.join(ref, "README.md"), "--tokens", "1"], "not a .gguf"),
        ("unsupported arch", [fake, "--tokens", "1"], "unsupported architecture"),
    ]
    rows = []
    for desc, args, want in cases:
        r = subprocess.run([python, DUMP, *args, "-o", os.path.join(tmp, "err.safetensors")],
                           capture_output=True, text=True)
        msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
        ok = r.returncode != 0 and want in msg and "Traceback" not in r.stderr
        rows.append((desc, ok, msg))
    return rows


def hooks_transparent(ref, tmp):
    """The dump's values equal a plain forward pass on this machine, bit for bit (hooks change nothing)."""
    import torch
    from transformers import AutoModelForCausalLM

    rows = []
    for model in sorted(os.listdir(os.path.join(ref, "hf"))):
        path = os.path.join(tmp, f"hf.{model}.five.safetensors")
        if not os.path.exists(path):
            continue
        got, meta = load(path)
        ids = json.loads(meta["token_ids"])
        m = AutoModelForCausalLM.from_pretrained(os.path.join(ref, "hf", model), attn_implementation="eager",
                                                 dtype=torch.float32).eval()
        with torch.no_grad():
            out = m(input_ids=torch.tensor([ids]), use_cache=False, output_hidden_states=True)
        n = m.config.num_hidden_layers
        pairs = [("tok_embd", out.hidden_states[0])] + [(f"blk.{i}.l_out", out.hidden_states[i + 1])
                                                        for i in range(n - 1)]
        pairs += [("result_norm", out.hidden_states[n]), ("result_output", out.logits)]
        diff = max(float(np.max(np.abs(got[k] - v[0].numpy()))) for k, v in pairs)
        rows.append((model, len(pairs), diff))
    return rows


def other_routes(python, ref, tmp):
    """--gguf-file NAME inside a folder, and --prompt (token ids = the tokenizer's)."""
    from transformers import AutoTokenizer

    rows = []
    out = os.path.join(tmp, "route.safetensors")
    g = os.path.join(tmp, "llama_small.f32.gguf")
    if not os.path.exists(g):
        os.symlink(os.path.join(ref, "gguf", "llama_small.f32.gguf"), g)
    r = subprocess.run([python, DUMP, tmp, "--gguf-file", "llama_small.f32.gguf", "--tokens", "1,2,3,4,5",
                        "-o", out], capture_output=True, text=True)
    if r.returncode == 0:
        got, _ = load(out)
        refs, _ = load(os.path.join(ref, "refs", "llama_small", "five.safetensors"))
        e = rel(got["result_output"], refs["f32.logits"])
        rows.append(("--gguf-file NAME", e <= TOL_GGUF, f"logits max rel err {e:.3e}"))
    else:
        rows.append(("--gguf-file NAME", False, r.stderr.strip().splitlines()[-1]))
    for model in ("llama_small", "qwen3_gqa"):
        folder = os.path.join(ref, "hf", model)
        want = AutoTokenizer.from_pretrained(folder)("hello world")["input_ids"]
        r = subprocess.run([python, DUMP, folder, "--prompt", "hello world", "-o", out], capture_output=True, text=True)
        if r.returncode != 0:
            rows.append((f"--prompt {model}", False, r.stderr.strip().splitlines()[-1]))
            continue
        got = json.loads(load(out)[1]["token_ids"])
        rows.append((f"--prompt {model}", got == list(want), f"token_ids {got}"))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", default=os.path.join(HERE, "..", "..", "shared", "reference"))
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs hf_dump.py")
    ap.add_argument("--f64", action="store_true", help="also run --dtype f64 against the f64. refs (info)")
    ap.add_argument("--keep", help="write the dumps here instead of a temporary folder")
    args = ap.parse_args()
    ref = os.path.abspath(args.ref)
    tmp = args.keep or tempfile.mkdtemp(prefix="check_hf_dump.")
    os.makedirs(tmp, exist_ok=True)

    runs = []  # (route, model, seq, model_arg, ref_path, tol, gguf_path, dtype, prefix)
    for model in sorted(os.listdir(os.path.join(ref, "hf"))):
        for seq in sorted(os.listdir(os.path.join(ref, "refs", model))):
            if seq.endswith(".safetensors"):
                runs.append(("hf", model, seq[:-12], os.path.join(ref, "hf", model),
                             os.path.join(ref, "refs", model, seq), TOL_HF, None, "f32", "f32."))
    for model in GGUF_MODELS:
        g = os.path.join(ref, "gguf", f"{model}.f32.gguf")
        for seq in sorted(os.listdir(os.path.join(ref, "refs", model))):
            if seq.endswith(".safetensors"):
                runs.append(("gguf", model, seq[:-12], g, os.path.join(ref, "refs", model, seq), TOL_GGUF, g,
                             "f32", "f32."))
    if args.f64:
        for model in sorted(os.listdir(os.path.join(ref, "hf"))):
            runs.append(("hf-f64*", model, "five", os.path.join(ref, "hf", model),
                         os.path.join(ref, "refs", model, "five.safetensors"), None, None, "f64", "f64."))

    ok_all = True
    hdr = f"{'route':8} {'model':18} {'seq':7} {'n':>4} {'worst stage':30} {'max rel err':>11} {'kq->softmax':>11}  status"
    print(hdr)
    print("-" * len(hdr))
    for route, model, seq, model_arg, ref_path, tol, gguf_path, dtype, prefix in runs:
        tag = f"{route.replace('*', '')}.{model}.{seq}"
        try:
            errs, problems, _ = check_one(args.python, model_arg, ref_path, prefix, tmp, tag, gguf_path, dtype)
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"{route:8} {model:18} {seq:7} ERROR {e}")
            ok_all = False
            continue
        kname, kval = worst(errs, lambda k: "(softmax)" in k)
        sname, sval = worst(errs, lambda k: "(softmax)" not in k)
        if sval == 0.0:
            sname = "(all stages bit-exact)"
        if tol is None:
            status = "info"
        else:
            good = sval <= tol and kval <= TOL_KQ and not problems
            ok_all &= good
            status = "ok" if good else "FAIL"
        print(f"{route:8} {model:18} {seq:7} {len(errs):4} {sname:30} {sval:11.3e} {kval:11.3e}  {status}")
        for p in problems:
            print(f"         ! {p}")
    print()
    print("hooks change nothing (dump vs a plain forward, output_hidden_states, this machine):")
    for model, n, diff in hooks_transparent(ref, tmp):
        ok_all &= diff == 0.0
        print(f"  {'ok  ' if diff == 0.0 else 'FAIL'} {model:18} {n} tensors, max |diff| {diff:.3e}")
    print()
    print("other routes:")
    for desc, ok, msg in other_routes(args.python, ref, tmp):
        ok_all &= ok
        print(f"  {'ok  ' if ok else 'FAIL'} {desc:22} {msg}")
    print()
    print("error paths:")
    for desc, ok, msg in cli_errors(args.python, ref, tmp):
        ok_all &= ok
        print(f"  {'ok  ' if ok else 'FAIL'} {desc:22} {msg}")
    print()
    print(f"tolerances: hf route {TOL_HF:g}, gguf route {TOL_GGUF:g}, softmax(kq) vs kq_softmax {TOL_KQ:g}"
          + ("; hf-f64* rows are information only (transformers' float32 islands remain)" if args.f64 else ""))
    print(f"dumps in {tmp}")
    print("ALL OK" if ok_all else "SOME CHECKS FAILED")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
