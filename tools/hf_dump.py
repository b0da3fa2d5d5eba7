#!/usr/bin/env python3
"""Run a Hugging Face transformers causal LM once and write every intermediate activation as a
paritylab dump (docs/dump-format.md, format version 1). Llama, Qwen2 and Qwen3 architectures.

Install: pip install torch transformers safetensors numpy   (plus `gguf accelerate` to read .gguf models)
Use:     python tools/hf_dump.py path/to/hf_model_folder --tokens 1,5,3 -o dump.safetensors

MODEL is an HF model folder (config.json + weights) or a .gguf file, which transformers loads
through its GGUF support (dequantised to the chosen dtype). Either way the dump is in HF Q/K row
order (transformers de-permutes llama.cpp's Llama Q/K rows when it loads a GGUF), so the metadata
says `qk_row_order` = `hf` and paritylab permutes q/k/q_rope/k_rope itself. For a GGUF, head_dim is
taken from `<arch>.attention.key_length` (transformers 5.24 ignores that key for qwen3 and would assume
128). --prompt on a GGUF uses the tokenizer transformers rebuilds from it; prefer --tokens for parity work.

Everything runs on the CPU, batch of one, eager attention, under torch.no_grad(). Stages are taken
with forward hooks and pre-hooks on the model's modules; transformers' code is not modified. Three
stages have no module of their own and are recomputed here from captured tensors with HF's own
formulas, in the model's dtype: q_rope / k_rope (rotate_half RoPE with the (cos, sin) the decoder
passes to each attention module) and kq (q_rope . k_rope^T * scaling, GQA-repeated keys). kq holds
every [query, key] product, the non-causal ones included; only the causal entries are meaningful.

--dtype f64 converts the model to float64 ("model in float64"). It is NOT an all-f64 graph:
transformers keeps float32 islands (RMSNorm computes in float32, the RoPE cos/sin tables are computed
in float32, eager softmax runs in float32), so such a dump carries float32-level noise at those steps
although it is stored as F64.
"""

import argparse
import hashlib
import json
import os
import sys

SUPPORTED = ("llama", "qwen2", "qwen3")


class DumpError(Exception):
    """A user-facing error: printed without a traceback."""


# ----------------------------------------------------------------------------------------------
# Arguments


def parse_tokens(text):
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip() != ""]
    if not parts:
        raise DumpError(f"--tokens: no token ids in {text!r} (expected e.g. --tokens 1,5,3)")
    ids = []
    for p in parts:
        try:
            v = int(p, 10)
        except ValueError:
            raise DumpError(f"--tokens: {p!r} is not an integer token id (expected e.g. --tokens 1,5,3)")
        if v < 0:
            raise DumpError(f"--tokens: token id {v} is negative")
        ids.append(v)
    return ids


def resolve_model(model, gguf_file):
    """Returns (folder, gguf_name or None, gguf_path or None)."""
    if not os.path.exists(model):
        raise DumpError(f"model not found: {model}")
    if os.path.isfile(model):
        if gguf_file:
            raise DumpError("--gguf-file names a file inside a model folder; MODEL is already a file")
        if not model.lower().endswith(".gguf"):
            raise DumpError(f"{model} is a file but not a .gguf; MODEL must be an HF model folder or a .gguf file")
        path = os.path.abspath(model)
        return os.path.dirname(path), os.path.basename(path), path
    if gguf_file:
        path = os.path.join(model, gguf_file)
        if not os.path.isfile(path):
            raise DumpError(f"GGUF file not found: {path}")
        return model, gguf_file, path
    if not os.path.isfile(os.path.join(model, "config.json")):
        raise DumpError(f"{model} has no config.json: MODEL must be an HF model folder (config.json + "
                        "*.safetensors) or a .gguf file (or give --gguf-file NAME inside the folder)")
    files = os.listdir(model)
    if not any(f.endswith(".safetensors") or f.endswith(".bin") for f in files):
        raise DumpError(f"{model} has a config.json but no weights (*.safetensors)")
    return model, None, None


def gguf_fields(gguf_path):
    """The GGUF's scalar metadata (tokenizer arrays skipped) as {key: value}."""
    try:
        from gguf import GGUFReader, GGUFValueType
    except ImportError:
        raise DumpError("reading a .gguf needs the `gguf` package: pip install gguf accelerate")
    try:
        reader = GGUFReader(gguf_path)
    except Exception as e:  # not a GGUF, truncated, ...
        raise DumpError(f"{gguf_path}: cannot read as GGUF: {e}")
    kv = {}
    for key, field in reader.fields.items():
        if len(field.data) != 1 or key.startswith("tokenizer."):
            continue
        part = field.parts[field.data[0]]
        try:
            if field.types and field.types[0] == GGUFValueType.STRING:
                kv[key] = bytes(part).decode("utf-8")
            elif field.types and field.types[0] != GGUFValueType.ARRAY:
                kv[key] = part.tolist()[0]
        except Exception:  # an odd value: not needed here
            pass
    return kv


def architecture_of(folder, gguf_kv):
    if gguf_kv is not None:
        arch = gguf_kv.get("general.architecture")
        if arch is None:
            raise DumpError("the GGUF has no general.architecture key")
    else:
        try:
            with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
                arch = json.load(f).get("model_type")
        except (OSError, ValueError) as e:
            raise DumpError(f"{folder}/config.json: cannot read: {e}")
    if arch not in SUPPORTED:
        raise DumpError(f"unsupported architecture {arch!r}: hf_dump.py supports {', '.join(SUPPORTED)}")
    return arch


def gguf_config(folder, gguf_name, arch, kv):
    """transformers' config for a GGUF, with head_dim taken from `<arch>.attention.key_length`.

    transformers 5.24 maps that key for qwen3_moe but not for qwen3 (nor qwen2), so a Qwen3 GGUF
    whose head size is not the Qwen3Config default (128) would otherwise load with the wrong shapes."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, gguf_file=gguf_name)
    kl, vl = kv.get(f"{arch}.attention.key_length"), kv.get(f"{arch}.attention.value_length")
    if kl is not None and vl is not None and kl != vl:
        raise DumpError(f"the GGUF has key_length {kl} != value_length {vl}: not supported")
    if kl is not None:
        current = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        if current != kl:
            print(f"hf_dump.py: note: head_dim {current} from transformers' GGUF config replaced by "
                  f"{arch}.attention.key_length = {kl}", file=sys.stderr)
            config.head_dim = kl
    return config


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# Capture


def rotate_half(x):
    """HF's rotate_half (split-half RoPE)."""
    import torch

    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n_rep):
    """HF's repeat_kv: [B, nKV, T, hd] -> [B, nKV*n_rep, T, hd]."""
    if n_rep == 1:
        return x
    b, nkv, t, hd = x.shape
    return x[:, :, None, :, :].expand(b, nkv, n_rep, t, hd).reshape(b, nkv * n_rep, t, hd)


def first_tensor(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise DumpError(f"unexpected module output type {type(out).__name__}: this transformers version "
                    "is not laid out as hf_dump.py expects")


def capture(model, ids):
    """Runs the model on ids (a list of ints) and returns {stage name: tensor} (batch dim dropped)."""
    import torch

    inner = model.model
    cfg = model.config
    layers = inner.layers
    store = {}
    handles = []

    def keep(name, t):
        if name in store:
            raise DumpError(f"stage {name} captured twice (a module shared between layers?)")
        store[name] = t.detach()

    def out_hook(name):
        def hook(_mod, _args, out):
            keep(name, first_tensor(out))
        return hook

    def in_hook(name):
        def hook(_mod, args):
            keep(name, args[0])
        return hook

    def attn_pre_hook(i):
        def hook(_mod, _args, kwargs):
            pe = kwargs.get("position_embeddings")
            if pe is None:
                raise DumpError("the attention module was called without position_embeddings: this "
                                "transformers version is not laid out as hf_dump.py expects")
            keep(f"_cos.{i}", pe[0])
            keep(f"_sin.{i}", pe[1])
        return hook

    reg = lambda mod, fn: handles.append(mod.register_forward_hook(fn))
    pre = lambda mod, fn: handles.append(mod.register_forward_pre_hook(fn))

    reg(inner.embed_tokens, out_hook("tok_embd"))
    act_ids = [id(l.mlp.act_fn) for l in layers if isinstance(getattr(l.mlp, "act_fn", None), torch.nn.Module)]
    hook_act = len(act_ids) == len(layers) and len(set(act_ids)) == len(layers)
    for i, layer in enumerate(layers):
        b = f"blk.{i}."
        attn, mlp = layer.self_attn, layer.mlp
        reg(layer.input_layernorm, out_hook(b + "attn_norm"))
        reg(attn.q_proj, out_hook(b + "q"))
        reg(attn.k_proj, out_hook(b + "k"))
        reg(attn.v_proj, out_hook(b + "v"))
        if hasattr(attn, "q_norm"):
            reg(attn.q_norm, out_hook(b + "q_normed"))
            reg(attn.k_norm, out_hook(b + "k_normed"))
        handles.append(attn.register_forward_pre_hook(attn_pre_hook(i), with_kwargs=True))
        pre(attn.o_proj, in_hook(b + "kqv"))
        reg(attn.o_proj, out_hook(b + "attn_out"))
        pre(layer.post_attention_layernorm, in_hook(b + "ffn_inp"))  # residual + attn_out, as HF summed it
        reg(layer.post_attention_layernorm, out_hook(b + "ffn_norm"))
        reg(mlp.gate_proj, out_hook(b + "ffn_gate"))
        reg(mlp.up_proj, out_hook(b + "ffn_up"))
        if hook_act:
            reg(mlp.act_fn, out_hook(b + "ffn_silu"))
        pre(mlp.down_proj, in_hook(b + "ffn_act"))
        reg(mlp.down_proj, out_hook(b + "ffn_out"))
        reg(layer, out_hook(b + "l_out"))
    reg(inner.norm, out_hook("result_norm"))

    try:
        with torch.no_grad():
            input_ids = torch.tensor([ids], dtype=torch.long)
            out = model(input_ids=input_ids, use_cache=False, output_attentions=True)
            if out.attentions is None or len(out.attentions) != len(layers) or any(a is None for a in out.attentions):
                raise DumpError("the model returned no attention weights (output_attentions=True): eager "
                                "attention is required")
            for i, a in enumerate(out.attentions):
                keep(f"blk.{i}.kq_softmax", a)
            keep("result_output", out.logits)

            # Stages without a module, recomputed with HF's formulas in the model's dtype.
            for i, layer in enumerate(layers):
                b = f"blk.{i}."
                attn = layer.self_attn
                hd = attn.head_dim
                if not hook_act:
                    store[b + "ffn_silu"] = torch.nn.functional.silu(store[b + "ffn_gate"])
                cos, sin = store.pop(f"_cos.{i}"), store.pop(f"_sin.{i}")
                qs = store.get(b + "q_normed", store[b + "q"])
                ks = store.get(b + "k_normed", store[b + "k"])
                # [B, T, heads, hd] -> [B, heads, T, hd], exactly as the attention module lays them out
                q = qs.reshape(*qs.shape[:2], -1, hd).transpose(1, 2)
                k = ks.reshape(*ks.shape[:2], -1, hd).transpose(1, 2)
                c, s = cos.unsqueeze(1), sin.unsqueeze(1)
                q_rope = (q * c) + (rotate_half(q) * s)
                k_rope = (k * c) + (rotate_half(k) * s)
                scaling = getattr(attn, "scaling", hd ** -0.5)
                n_rep = getattr(attn, "num_key_value_groups", q.shape[1] // k.shape[1])
                kq = torch.matmul(q_rope, repeat_kv(k_rope, n_rep).transpose(2, 3)) * scaling
                store[b + "q_rope"] = q_rope.transpose(1, 2)
                store[b + "k_rope"] = k_rope.transpose(1, 2)
                store[b + "kq"] = kq
    finally:
        for h in handles:
            h.remove()

    # Drop the batch dimension; per-position tensors become [T, n] (heads merged).
    t = len(ids)
    result = {}
    for name, x in store.items():
        if x.shape[0] != 1:
            raise DumpError(f"stage {name}: expected a batch of one, got shape {tuple(x.shape)}")
        x = x[0]
        if not name.endswith("kq") and not name.endswith("kq_softmax"):
            x = x.reshape(t, -1)
        result[name] = x
    return result


ORDER = ["attn_norm", "q", "k", "v", "q_normed", "k_normed", "q_rope", "k_rope", "kq", "kq_softmax", "kqv",
         "attn_out", "ffn_inp", "ffn_norm", "ffn_gate", "ffn_up", "ffn_silu", "ffn_act", "ffn_out", "l_out"]


def ordered(stages, n_layers):
    names = ["tok_embd"] + [f"blk.{i}.{s}" for i in range(n_layers) for s in ORDER] + ["result_norm", "result_output"]
    return [n for n in names if n in stages]


# ----------------------------------------------------------------------------------------------
# Main


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Write a paritylab dump (docs/dump-format.md) of a transformers forward pass.")
    ap.add_argument("model", metavar="MODEL", help="HF model folder (config.json + safetensors) or a .gguf file")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", help="comma-separated token ids, BOS included, e.g. 1,5,3")
    src.add_argument("--prompt", help="text, tokenized with the model's tokenizer")
    ap.add_argument("-o", "--output", required=True, help="output .safetensors file")
    ap.add_argument("--dtype", choices=("f32", "f64"), default="f32",
                    help="model dtype (f64: model in float64, with transformers' float32 islands)")
    ap.add_argument("--gguf-file", help="name of a .gguf file inside the MODEL folder")
    ap.add_argument("--no-bos", action="store_true", help="with --prompt: do not add the tokenizer's special tokens")
    args = ap.parse_args(argv)

    try:
        ids = parse_tokens(args.tokens) if args.tokens is not None else None
        folder, gguf_name, gguf_path = resolve_model(args.model, args.gguf_file)
        kv = gguf_fields(gguf_path) if gguf_path is not None else None
        arch = architecture_of(folder, kv)
        out_dir = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(out_dir):
            raise DumpError(f"output folder does not exist: {out_dir}")

        try:
            import torch
            import transformers
            from safetensors.torch import save_file
            from transformers import AutoModelForCausalLM
        except ImportError as e:
            raise DumpError(f"missing package ({e}): pip install torch transformers safetensors numpy")

        transformers.utils.logging.disable_progress_bar()
        extra = {"gguf_file": gguf_name} if gguf_name else {}
        if gguf_name:
            import importlib.util
            missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
            if missing:
                raise DumpError(f"transformers needs {' and '.join(missing)} to load a .gguf: "
                                f"pip install {' '.join(missing)}")
        try:
            if gguf_name:
                extra["config"] = gguf_config(folder, gguf_name, arch, kv)
            model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager",
                                                         dtype=torch.float32, **extra)
            extra.pop("config", None)
        except DumpError:
            raise
        except Exception as e:
            raise DumpError(f"transformers could not load {gguf_path or folder}: {e}")
        model.eval()
        if args.dtype == "f64":
            model = model.to(torch.float64)
        n_layers = model.config.num_hidden_layers
        vocab = model.config.vocab_size
        if not all(hasattr(l, a) for l in model.model.layers
                   for a in ("self_attn", "mlp", "input_layernorm", "post_attention_layernorm")):
            raise DumpError(f"{type(model).__name__}: decoder layers are not laid out as hf_dump.py expects")

        if ids is None:
            try:
                from transformers import AutoTokenizer
                tok = AutoTokenizer.from_pretrained(folder, **extra)
            except Exception as e:
                raise DumpError(f"cannot load the model's tokenizer for --prompt: {e}")
            ids = list(tok(args.prompt, add_special_tokens=not args.no_bos)["input_ids"])
            if not ids:
                raise DumpError("--prompt: the tokenizer produced no tokens")
        bad = [v for v in ids if v >= vocab]
        if bad:
            raise DumpError(f"--tokens: id(s) {bad} out of range (vocabulary size {vocab})")

        stages = capture(model, ids)
        dt = torch.float64 if args.dtype == "f64" else torch.float32
        tensors = {n: stages[n].to(dt).contiguous() for n in ordered(stages, n_layers)}
        meta = {
            "format": "paritylab-dump",
            "format_version": "1",
            "token_ids": json.dumps(ids),
            "producer": f"hf_dump.py transformers {transformers.__version__} torch {torch.__version__}",
            # transformers keeps float32 islands (RMSNorm, RoPE tables, softmax) in a float64 model,
            # so the values are only as precise as float32: say so, or paritylab would allow them
            # no float noise at all.
            "precision": "f32",
            "qk_row_order": "hf",
            "architecture": arch,
        }
        if gguf_path is not None:
            meta["model_sha256"] = sha256_of(gguf_path)
        save_file(tensors, args.output, metadata=meta)
    except DumpError as e:
        print(f"hf_dump.py: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {len(tensors)} tensors, {len(ids)} positions, {arch}, {args.dtype}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
