#!/usr/bin/env python3
"""The PyTorch peer of cram's crammed-BERT: throughput, CPU parity with cram, and budgeted MLM training.

The model is cram's preset architecture (include/cram/model/presets.hpp, CRAMMING.md): pre-norm blocks, fused
QKV without bias, GELU-GLU FFN (first half x, second half gate: x * GELU(gate), exact erf GELU) without biases,
scaled sinusoidal positions (interleaved table: even columns sin(pos / 10000^(i/h)), odd columns cos, times one
learnable scalar initialised 1/sqrt(h)), embedding and final LayerNorm (eps 1e-12), decoder tied to the token
embedding without bias, sparse prediction (decoder and loss only on the masked positions). Parameter names and
shapes equal cram's checkpoint names (docs/training.md), so a cram model.safetensors loads with strict=True.

Three modes (the first is the default, so `crammed_bert.py --micro-batches ...` works as before):

  bench   micro-step throughput (forward + loss + backward) like bench_cuda_train, one JSON object on stdout:
          crammed_bert.py [bench] --micro-batches 64 128 256 512 --steps 20 [--preset P] [--device auto|cpu|cuda]
                              [--threads N] [--static-shapes]
          (run_gpu.sh: one size per process, --static-shapes: torch.compile(dynamic=False), no recompiles)
  parity  load a cram checkpoint, mask one batch of a cram dataset (cram's Philox masking, ported), print the
          loss and gradient norms, write the batch for cram's peer_parity and compare with its gradients:
          crammed_bert.py parity --checkpoint RUN/checkpoints/step-N/model.safetensors --data DIR --preset P
                                 --write-batch FILE [--cram-grads FILE --cram-json FILE] [--dtype float64|float32]
  train   the recipe on cram's token shards under a wall-clock budget, then the held-out MLM loss:
          crammed_bert.py train --data DIR --budget 8m --preset P [--device D] [--micro-batch N] [--metrics FILE]

On a modern GPU install: bf16 autocast, torch.compile, fused SDPA attention and fused AdamW. Each fast path is
taken only when the installed torch has it (feature checks), so the script also runs on e.g. torch 1.13 on a CPU.
"""
import argparse
import inspect
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

T0 = time.perf_counter()  # the budget clock of `train` starts with the process, as cram's does

# cram's presets (include/cram/model/presets.hpp + the bert_config defaults in config.hpp). All of them use
# pre-norm, GELU-GLU, scaled sinusoidal positions, no biases in linears, no decoder bias, embedding and final
# LayerNorm, no head transform, tied decoder, sparse prediction, LayerNorm eps 1e-12, init std 0.02, pad id 0.
PRESETS = {
    "crammed_bert": dict(vocab=32768, hidden=768, heads=12, layers=16, intermediate=3072, max_seq=128),
    "crammed_mini": dict(vocab=32768, hidden=256, heads=4, layers=4, intermediate=1024, max_seq=128),
    "crammed_tiny": dict(vocab=8192, hidden=128, heads=2, layers=2, intermediate=512, max_seq=128),
}
NORM_EPS, INIT_STD, SEQ, MASK_FRACTION = 1e-12, 0.02, 128, 0.25
# dense bf16 peaks by GPU name (docs/training.md), for MFU
PEAKS = [("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12),
         ("A6000", 155e12), ("4090", 165e12)]

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
HAS_COMPILE = hasattr(torch, "compile")
HAS_FUSED_ADAMW = "fused" in inspect.signature(torch.optim.AdamW).parameters
OOM_ERROR = getattr(torch.cuda, "OutOfMemoryError", RuntimeError)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- model --------------------------------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)  # rows [q | k | v], heads contiguous in each
        self.out = nn.Linear(hidden, hidden, bias=False)

    def forward(self, x):
        b, s, h = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        if HAS_SDPA:
            a = F.scaled_dot_product_attention(q, k, v)  # non-causal, no mask: fully packed sequences
        else:
            p = torch.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(h // self.heads)), dim=-1)
            a = p @ v
        return self.out(a.transpose(1, 2).reshape(b, s, h))


class Block(nn.Module):
    def __init__(self, hidden, heads, intermediate):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, eps=NORM_EPS)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, eps=NORM_EPS)
        # ModuleDict so the names are cram's "ffn.in.weight" / "ffn.out.weight" ("in" is a Python keyword)
        self.ffn = nn.ModuleDict({"in": nn.Linear(hidden, intermediate, bias=False),
                                  "out": nn.Linear(intermediate // 2, hidden, bias=False)})

    def forward(self, x):
        x = x + self.attn(self.norm1(x))  # pre-norm
        u, gate = self.ffn["in"](self.norm2(x)).chunk(2, dim=-1)  # [x | gate]
        return x + self.ffn["out"](u * F.gelu(gate))  # exact (erf) GELU


def sinusoid_table(seq, hidden):
    """cram::ops::sinusoidal_table: interleaved, computed in double."""
    pos = torch.arange(seq, dtype=torch.float64)[:, None]
    freq = torch.pow(10000.0, -torch.arange(0, hidden, 2, dtype=torch.float64) / hidden)
    table = torch.zeros(seq, hidden, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class CrammedBert(nn.Module):
    def __init__(self, vocab, hidden, heads, layers, intermediate, max_seq):
        super().__init__()
        self.vocab, self.hidden, self.layers_n = vocab, hidden, layers
        self.intermediate = intermediate
        self.embeddings = nn.Module()
        # no padding_idx: cram's embedding backward accumulates into every row (the pad row only starts at 0)
        self.embeddings.word = nn.Embedding(vocab, hidden)
        self.embeddings.position = nn.Module()
        self.embeddings.position.scale = nn.Parameter(torch.full((1,), 1.0 / math.sqrt(hidden)))
        self.embeddings.norm = nn.LayerNorm(hidden, eps=NORM_EPS)
        self.layers = nn.ModuleList(Block(hidden, heads, intermediate) for _ in range(layers))
        self.final_norm = nn.LayerNorm(hidden, eps=NORM_EPS)
        self.register_buffer("sinusoid", sinusoid_table(max_seq, hidden).float(), persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, INIT_STD)
        with torch.no_grad():
            self.embeddings.word.weight[0].zero_()  # pad row

    def _apply(self, fn, *a, **k):
        # keep the fixed table exact in float64 models (parity), whatever the conversion
        out = super()._apply(fn, *a, **k)
        if self.embeddings.word.weight.dtype == torch.float64:  # not the widened float32 table
            self.sinusoid = sinusoid_table(self.sinusoid.shape[0], self.hidden).to(self.sinusoid.device)
        return out

    def forward(self, ids, masked_positions, targets):
        """ids [batch, seq]; masked_positions flat rows b*seq+s (ascending); mean loss over the masked tokens."""
        e = self.embeddings
        x = e.word(ids) + e.position.scale * self.sinusoid[: ids.shape[1]]
        x = e.norm(x)
        for blk in self.layers:
            x = blk(x)
        x = self.final_norm(x).flatten(0, 1)[masked_positions]  # sparse prediction
        logits = x @ e.word.weight.t()  # tied decoder, no bias
        # the loss in at least fp32 (bf16 logits under autocast), float64 models stay float64
        return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), targets)

    def matmul_weights(self):
        h, i, n = self.hidden, self.intermediate, self.layers_n
        return n * (3 * h * h + h * h + i * h + h * (i // 2))

    def flops_per_token(self, seq=SEQ):
        """CRAMMING.md cost model: 6 N_matmul + 12 L d T + 6 d V p."""
        return 6 * self.matmul_weights() + 12 * self.layers_n * self.hidden * seq + \
            6 * self.hidden * self.vocab * MASK_FRACTION


def build_model(preset):
    if preset not in PRESETS:
        raise SystemExit(f"unknown --preset {preset!r}; one of {', '.join(PRESETS)}")
    return CrammedBert(**PRESETS[preset])


def pick_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this torch has no usable CUDA device")
    return torch.device(name)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_optimizer(model, lr, device):
    """AdamW as the recipe: decay on matrices and embeddings only (cram's param_role)."""
    decay = [p for n, p in model.named_parameters() if n.endswith(".weight") and p.dim() == 2]
    rest = [p for n, p in model.named_parameters() if not (n.endswith(".weight") and p.dim() == 2)]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}]
    kw = dict(lr=lr, betas=(0.9, 0.98), eps=1e-12)
    if HAS_FUSED_ADAMW and device.type == "cuda":
        try:
            return torch.optim.AdamW(groups, fused=True, **kw), True
        except (TypeError, RuntimeError) as e:
            log(f"fused AdamW unavailable ({e}); using the default implementation")
    return torch.optim.AdamW(groups, **kw), False


class Runner:
    """The forward (optionally compiled) under bf16 autocast on CUDA; plain fp32 on the CPU."""

    def __init__(self, model, device, want_compile, static_shapes=False):
        self.model, self.device = model, device
        self.autocast = device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.compiled = False
        self.fwd = model
        if want_compile and HAS_COMPILE and device.type == "cuda":
            try:
                # static_shapes: one graph for the one shape this process runs (no dynamic-shape recompile)
                self.fwd = torch.compile(model, dynamic=False) if static_shapes else torch.compile(model)
                self.compiled = True
            except Exception as e:  # noqa: BLE001 (any failure: run eagerly)
                log(f"torch.compile failed ({e}); running eagerly")

    def loss(self, ids, pos, tgt):
        try:
            return self._loss(ids, pos, tgt)
        except OOM_ERROR:
            raise
        except Exception as e:  # noqa: BLE001 (compile errors surface at the first call)
            if not self.compiled:
                raise
            log(f"compiled model failed ({type(e).__name__}: {e}); falling back to eager")
            self.fwd, self.compiled = self.model, False
            return self._loss(ids, pos, tgt)

    def _loss(self, ids, pos, tgt):
        if self.autocast:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.fwd(ids, pos, tgt)
        return self.fwd(ids, pos, tgt)


# ---- cram's data: token shards, Philox masking --------------------------------------------------------------
M32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """cram/core/rng.hpp philox4x32_10, vectorised over uint64 arrays holding 32-bit values."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & M32 for c in (c0, c1, c2, c3))
    k0, k1 = np.uint64(k0) & M32, np.uint64(k1) & M32
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    w0, w1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
    for rnd in range(10):
        if rnd > 0:
            k0, k1 = (k0 + w0) & M32, (k1 + w1) & M32
        p0, p1 = m0 * c0, m1 * c2  # < 2^64: no overflow
        hi0, lo0 = p0 >> np.uint64(32), p0 & M32
        hi1, lo1 = p1 >> np.uint64(32), p1 & M32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def philox_at(seed, streams, substreams, n):
    """philox_stream(seed, stream, substream).at(i) for i in [0, n): [len(streams), n] uint64."""
    blocks = (n + 3) // 4
    ctr, streams, substreams = np.broadcast_arrays(np.arange(blocks, dtype=np.uint64)[None, :],
                                                   np.asarray(streams, dtype=np.uint64)[:, None],
                                                   np.asarray(substreams, dtype=np.uint64)[:, None])
    v = philox4x32_10(ctr, np.zeros_like(ctr), streams, substreams, seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)
    out = np.stack(v, axis=-1).reshape(ctr.shape[0], blocks * 4)
    return out[:, :n]


def mask_batch(tokens, seed, first_sequence, mask_id, vocab, random_low):
    """cram/model/masking.hpp mask_batch (defaults: 25%, 80% [MASK], 10% random in [random_low, vocab), 10% kept),
    the same draws from the same Philox stream keyed by (seed, global sequence index). tokens [batch, seq]."""
    batch, seq = tokens.shape
    k = int(np.float32(MASK_FRACTION) * np.float32(seq) + np.float32(0.5))
    idx = np.arange(first_sequence, first_sequence + batch, dtype=np.uint64)
    r = philox_at(seed, idx & M32, idx >> np.uint64(32), 3 * k)
    perm = np.tile(np.arange(seq, dtype=np.int64), (batch, 1))
    rows = np.arange(batch)
    for i in range(k):  # partial Fisher-Yates with the multiply-shift bound
        j = i + ((r[:, i] * np.uint64(seq - i)) >> np.uint64(32)).astype(np.int64)
        a, b = perm[rows, i].copy(), perm[rows, j].copy()
        perm[rows, i], perm[rows, j] = b, a
    pos = np.sort(perm[:, :k], axis=1)
    ids = tokens.astype(np.int64).copy()
    targets = np.take_along_axis(ids, pos, axis=1).copy()
    kind = r[:, k:3 * k:2]
    rand = r[:, k + 1:3 * k:2]
    u = (kind >> np.uint64(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    to_mask = u < np.float32(0.8)
    to_rand = (~to_mask) & (u < np.float32(np.float32(0.8) + np.float32(0.1)))
    span = np.uint64(vocab - random_low)
    rand_ids = random_low + ((rand * span) >> np.uint64(32)).astype(np.int64)
    vals = np.take_along_axis(ids, pos, axis=1)
    vals = np.where(to_mask, mask_id, np.where(to_rand, rand_ids, vals))
    np.put_along_axis(ids, pos, vals, axis=1)
    flat = (pos + seq * rows[:, None]).reshape(-1)
    return ids, flat, targets.reshape(-1)


SHARD_MAGIC, SHARD_VERSION = b"CRAMTOK\0", 1
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class Shards:
    """One split of a cram dataset directory (docs/data.md): shards in summary.json order, read with wrap-around."""

    def __init__(self, data_dir, split):
        names = sorted(f for f in os.listdir(data_dir) if re.fullmatch(rf"{split}-\d+\.shard", f))
        if not os.path.exists(os.path.join(data_dir, "summary.json")):
            raise SystemExit(f"{data_dir}: no summary.json (not a finished cram dataset)")
        if not names:
            raise SystemExit(f"{data_dir}: no {split}-*.shard files")
        self.parts, self.vocab, self.seq = [], None, None
        for n in names:
            path = os.path.join(data_dir, n)
            head = np.fromfile(path, dtype=np.uint8, count=64)
            if head.size < 64 or head[:8].tobytes() != SHARD_MAGIC:
                raise SystemExit(f"{path}: bad magic (not a cram token shard)")
            version, hbytes, vocab, tbytes, seq, flags = np.frombuffer(head[8:32].tobytes(), dtype="<u4")
            nseq, ntok = np.frombuffer(head[32:48].tobytes(), dtype="<u8")
            if version != SHARD_VERSION:
                raise SystemExit(f"{path}: shard version {version}; this reader knows version {SHARD_VERSION}")
            if hbytes != 64 or tbytes not in (2, 4) or ntok != nseq * seq or \
                    os.path.getsize(path) != 64 + int(ntok) * int(tbytes):
                raise SystemExit(f"{path}: inconsistent header or size")
            if self.vocab is None:
                self.vocab, self.seq = int(vocab), int(seq)
            elif (self.vocab, self.seq) != (int(vocab), int(seq)):
                raise SystemExit(f"{path}: vocabulary or sequence length differs from the other shards")
            if nseq == 0:
                continue
            arr = np.memmap(path, dtype="<u2" if tbytes == 2 else "<i4", mode="r", offset=64,
                            shape=(int(nseq), int(seq)))
            self.parts.append(arr)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        self.n = int(self.starts[-1])
        if self.n == 0:
            raise SystemExit(f"{data_dir}: the {split} split has no sequences")
        vocab_file = os.path.join(data_dir, "vocab.txt")
        with open(vocab_file, encoding="utf-8") as f:
            words = [w.rstrip("\n") for w in f]
        if len(words) != self.vocab:
            raise SystemExit(f"{vocab_file} has {len(words)} tokens, the shards say {self.vocab}")
        ids = {w: i for i, w in enumerate(words)}
        if "[MASK]" not in ids:
            raise SystemExit(f"{vocab_file} has no [MASK]")
        self.mask_id = ids["[MASK]"]
        self.random_low = max(ids[s] + 1 for s in SPECIALS if s in ids)  # mlm_source's num_specials

    def read(self, first, count):
        """Sequences first .. first+count-1 (wrapping around), gathered per shard rather than per row."""
        g = (first + np.arange(count, dtype=np.int64)) % self.n
        shard = np.searchsorted(self.starts, g, side="right") - 1
        out = np.empty((count, self.seq), dtype=np.int64)
        for s in np.unique(shard):
            rows = shard == s
            out[rows] = self.parts[s][g[rows] - self.starts[s]]
        return out

    def batch(self, first, count, seed):
        tokens = self.read(first, count)
        ids, pos, tgt = mask_batch(tokens, seed, first, self.mask_id, self.vocab, self.random_low)
        if ids.max() >= self.vocab:
            raise SystemExit("token id outside the vocabulary")
        return tokens, ids, pos, tgt


def to_device(device, ids, pos, tgt):
    return (torch.from_numpy(ids).to(device, non_blocking=True), torch.from_numpy(pos).to(device),
            torch.from_numpy(tgt).to(device))


# ---- safetensors (own reader/writer: the format is an 8-byte length, a JSON header, the bytes) ----------------
ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
             "U8": np.uint8, "I8": np.int8, "I16": np.int16}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    if n > len(raw) - 8:
        raise SystemExit(f"{path}: header length {n} does not fit the file")
    header = json.loads(raw[8:8 + n])
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] not in ST_DTYPES:
            raise SystemExit(f"{path}: tensor {name} has dtype {t['dtype']}, not read here")
        b, e = t["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=np.dtype(ST_DTYPES[t["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(t["shape"]).copy()
    return out


def load_cram_checkpoint(model, path):
    tensors = read_safetensors(path)
    want = dict(model.state_dict())
    missing = sorted(set(want) - set(tensors))
    extra = sorted(set(tensors) - set(want))
    if missing or extra:
        raise SystemExit(f"{path}: names differ from the peer's: missing {missing}, unexpected {extra}")
    for name, t in want.items():
        if tuple(tensors[name].shape) != tuple(t.shape):
            raise SystemExit(f"{path}: {name} has shape {tensors[name].shape}, the peer {tuple(t.shape)}")
    model.load_state_dict({k: torch.from_numpy(v).to(want[k].dtype) for k, v in tensors.items()}, strict=True)


# ---- bench --------------------------------------------------------------------------------------------------
def synthetic_batch(micro, vocab, device, gen):
    tokens = torch.randint(5, vocab, (micro, SEQ), generator=gen)
    k = round(MASK_FRACTION * SEQ)
    pos = torch.stack([torch.randperm(SEQ, generator=gen)[:k].sort().values for _ in range(micro)])
    flat = (pos + SEQ * torch.arange(micro)[:, None]).flatten()
    targets = tokens.flatten()[flat].clone()
    ids = tokens.clone().flatten()
    ids[flat] = 4  # [MASK] (the 80/10/10 split does not change the cost)
    return ids.view(micro, SEQ).to(device), flat.to(device), targets.to(device)


def peak_flops(device):
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(0)
    for key, peak in PEAKS:
        if key in name:
            return peak
    return None


def cmd_bench(args):
    if args.device == "auto" and not torch.cuda.is_available():
        # run_gpu.sh's call on a machine whose CUDA is unusable: say so rather than run for hours on the CPU
        print(json.dumps({"skipped": "no CUDA device (pass --device cpu to measure the CPU)"}), flush=True)
        return
    device = pick_device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    model = build_model(args.preset).to(device)
    opt, fused = make_optimizer(model, 1e-3, device)
    runner = Runner(model, device, not args.no_compile, args.static_shapes)
    peak = peak_flops(device)
    fpt = model.flops_per_token()

    def micro_step(ids, pos, tgt):
        loss = runner.loss(ids, pos, tgt)
        loss.backward()
        return loss.detach()

    results = []
    for micro in args.micro_batches:
        try:
            gen = torch.Generator().manual_seed(micro)
            ids, pos, tgt = synthetic_batch(micro, model.vocab, device, gen)
            for _ in range(args.warmup):
                micro_step(ids, pos, tgt)
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                loss = micro_step(ids, pos, tgt)
            sync(device)
            dt = (time.perf_counter() - t0) / args.steps
            tokens = micro * SEQ
            results.append({"micro_batch": micro, "seconds_per_micro_step": dt, "tokens_per_s": tokens / dt,
                            "mfu": tokens / dt * fpt / peak if peak else 0.0, "loss": float(loss)})
        except OOM_ERROR:
            results.append({"micro_batch": micro, "error": "out of memory"})
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    # optimizer step (clip + AdamW), once per accumulated batch
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    opt.step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(10):
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
    sync(device)
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "preset": args.preset, "device": device.type,
        "compiled": runner.compiled, "static_shapes": args.static_shapes, "sdpa": HAS_SDPA, "fused_adamw": fused,
        "bf16_autocast": runner.autocast,
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None, "threads": torch.get_num_threads(),
        "peak_flops": peak, "flops_per_token": fpt, "parameters": sum(p.numel() for p in model.parameters()),
        "optimizer_step_seconds": (time.perf_counter() - t0) / 10, "micro_steps": results}), flush=True)


# ---- parity -------------------------------------------------------------------------------------------------
def cmd_parity(args):
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    model = build_model(args.preset).to(dtype)
    load_cram_checkpoint(model, args.checkpoint)
    val = Shards(args.data, args.split)
    if val.vocab != model.vocab:
        raise SystemExit(f"{args.data}: vocabulary {val.vocab}, preset {args.preset} has {model.vocab}")
    tokens, ids, pos, tgt = val.batch(args.first_sequence, args.batch, args.seed)
    if args.write_batch:
        with open(args.write_batch, "w") as f:
            json.dump({"batch": args.batch, "seq": val.seq, "seed": args.seed, "first_sequence": args.first_sequence,
                       "mask_id": val.mask_id, "random_low": val.random_low,
                       "tokens": tokens.reshape(-1).tolist(), "ids": ids.reshape(-1).tolist(),
                       "masked_positions": pos.tolist(), "masked_targets": tgt.tolist()}, f)
    t_ids, t_pos, t_tgt = (torch.from_numpy(a) for a in (ids, pos, tgt))
    loss = model(t_ids, t_pos, t_tgt)
    loss.backward()
    grads = {n: p.grad.detach().to(torch.float64).numpy() for n, p in model.named_parameters()}
    out = {"impl": "pytorch", "torch": torch.__version__, "preset": args.preset, "dtype": args.dtype,
           "loss": float(loss), "grad_norms": {n: float(np.linalg.norm(g)) for n, g in grads.items()}}
    if args.cram_json:
        with open(args.cram_json) as f:
            cram = json.loads(f.read().strip().splitlines()[-1])
        out["cram_loss"] = cram["loss"]
        out["loss_rel_diff"] = abs(out["loss"] - cram["loss"]) / abs(cram["loss"])
        out["masking_matches_cram"] = cram.get("masking_matches_cram")
    if args.cram_grads:
        ref = read_safetensors(args.cram_grads)
        worst = {}
        for n, g in grads.items():
            r = ref[n].astype(np.float64)
            # error relative to the tensor's scale (max |grad|), per tensor
            worst[n] = float(np.max(np.abs(g - r)) / max(np.max(np.abs(r)), 1e-300))
        out["grad_max_rel_diff"] = worst
        out["grad_max_rel_diff_worst"] = max(worst.values())
    print(json.dumps(out), flush=True)
    if args.tolerance is not None and "loss_rel_diff" in out:
        bad = out["loss_rel_diff"] > args.tolerance or out.get("grad_max_rel_diff_worst", 0.0) > args.tolerance * 100
        masks = out.get("masking_matches_cram") or {}
        if bad or not all(masks.values()):
            log(f"PARITY FAILED (tolerance {args.tolerance})")
            sys.exit(1)


# ---- train --------------------------------------------------------------------------------------------------
def parse_budget(text):
    """cram's budget syntax: 24h, 90m, 45s, 1h30m, 1d, 2.5h, 1500ms, or bare seconds."""
    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 1e-3}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)", t)
    if not parts or "".join(a + b for a, b in parts) != t:
        raise SystemExit(f"--budget {text!r}: use e.g. 8m, 90s, 1h30m, 2.5h, 1500ms")
    return sum(float(a) * units[b] for a, b in parts)


def triangle2(p):
    """budget-triangle2: min(0.25 + p, 4 (1 - p)), 0 at p = 1."""
    return max(0.0, min(0.25 + p, 4.0 * (1.0 - p)))


def accumulation(p, micro, target, ramp_end):
    s = micro + (target - micro) * min(1.0, p / ramp_end)
    return max(1, int(math.floor(s / micro)))


def evaluate(model, runner, val, micro, batches, seed, device):
    vb = min(micro, val.n)
    batches = min(batches, (val.n + vb - 1) // vb)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for b in range(batches):
            _, ids, pos, tgt = val.batch(b * vb, vb, seed)
            loss = runner.loss(*to_device(device, ids, pos, tgt))
            total += float(loss) * len(tgt)
            count += len(tgt)
    model.train()
    return total / max(count, 1)


def cmd_train(args):
    budget = parse_budget(args.budget)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    if args.threads:
        torch.set_num_threads(args.threads)
    train = Shards(args.data, "train")
    val = Shards(args.data, "val")
    model = build_model(args.preset)
    if train.vocab != model.vocab:
        raise SystemExit(f"{args.data}: vocabulary {train.vocab}, preset {args.preset} needs {model.vocab}")
    model = model.to(device)
    opt, fused = make_optimizer(model, args.lr, device)
    runner = Runner(model, device, not args.no_compile)
    micro = args.micro_batch or (512 if device.type == "cuda" else 8)
    metrics = open(args.metrics, "w") if args.metrics else None

    def emit(obj):
        line = json.dumps(obj)
        print(line, flush=True)
        if metrics:
            metrics.write(line + "\n")
            metrics.flush()

    emit({"event": "start", "impl": "pytorch", "torch": torch.__version__, "preset": args.preset,
          "device": device.type, "budget_s": budget, "micro_batch": micro, "batch_target": args.batch_target,
          "compiled": runner.compiled, "sdpa": HAS_SDPA, "fused_adamw": fused, "bf16_autocast": runner.autocast,
          "parameters": sum(p.numel() for p in model.parameters()), "train_sequences": train.n,
          "val_sequences": val.n, "startup_s": time.perf_counter() - T0})
    elapsed = lambda: time.perf_counter() - T0  # noqa: E731
    position, step, micro_steps, tokens = 0, 0, 0, 0
    first_loss = last_loss = float("nan")
    stop = False
    t_train = time.perf_counter()
    while not stop:
        p = min(1.0, elapsed() / budget)
        acc = accumulation(p, micro, args.batch_target, args.ramp_end)
        done, losses = 0, []
        for _ in range(acc):
            _, ids, pos, tgt = train.batch(position, micro, args.seed)
            position += micro
            loss = runner.loss(*to_device(device, ids, pos, tgt))
            (loss / acc).backward()
            losses.append(loss.detach())
            done += 1
            micro_steps += 1
            if elapsed() >= budget:
                stop = True
                break
        if done < acc:  # the budget ran out inside an accumulation: drop the partial step
            opt.zero_grad(set_to_none=True)
            break
        p = min(1.0, elapsed() / budget)
        lr = args.lr * triangle2(p)
        for g in opt.param_groups:
            g["lr"] = lr
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        loss_val = float(torch.stack(losses).float().mean())  # synchronises a GPU once per optimizer step
        if math.isfinite(loss_val) and math.isfinite(float(norm)):
            opt.step()
            step += 1
        opt.zero_grad(set_to_none=True)
        tokens += done * micro * train.seq
        if step == 1:
            first_loss = loss_val
        last_loss = loss_val
        emit({"step": step, "elapsed_s": round(elapsed(), 3), "progress": round(p, 5), "loss": loss_val,
              "lr": lr, "grad_norm": float(norm), "batch": acc * micro, "accumulation": acc,
              "micro_steps": micro_steps, "tokens": tokens,
              "tokens_per_s": tokens / max(time.perf_counter() - t_train, 1e-9)})
        if args.max_steps and step >= args.max_steps:
            break
    sync(device)
    train_s = elapsed()
    val_loss = evaluate(model, runner, val, micro, args.val_batches, args.seed + 1, device) \
        if args.val_batches > 0 else float("nan")
    emit({"event": "summary", "impl": "pytorch", "steps": step, "micro_steps": micro_steps, "tokens": tokens,
          "elapsed_s": train_s, "first_loss": first_loss, "final_loss": last_loss, "val_loss": val_loss,
          "val_batches": args.val_batches, "stop": "budget" if stop else "max_steps"})
    if metrics:
        metrics.close()


# ---- command line -------------------------------------------------------------------------------------------
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("bench", "parity", "train", "-h", "--help"):
        argv.insert(0, "bench")  # run_gpu.sh's call: crammed_bert.py --micro-batches ... --steps 20
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="mode", required=True)

    b = sub.add_parser("bench", help="micro-step throughput (one JSON object)")
    b.add_argument("--micro-batches", type=int, nargs="+", default=[64, 128, 256, 512])
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--no-compile", action="store_true")
    b.add_argument("--static-shapes", action="store_true",
                   help="torch.compile(dynamic=False): for one micro-batch size per process (run_gpu.sh's call)")
    b.add_argument("--preset", default="crammed_bert", choices=sorted(PRESETS))
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA, or print {\"skipped\": ...} without it")
    b.add_argument("--threads", type=int, default=0,
                   help="torch.set_num_threads (intra-op threads) when > 0; 0 keeps torch's default. BLAS threads "
                   "follow OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in the environment")

    p = sub.add_parser("parity", help="loss and gradients of a cram checkpoint on one masked batch (CPU)")
    p.add_argument("--checkpoint", required=True, help="cram's model.safetensors")
    p.add_argument("--data", required=True, help="cram dataset directory (the batch is read from it)")
    p.add_argument("--split", default="val", choices=["train", "val"])
    p.add_argument("--preset", default="crammed_tiny", choices=sorted(PRESETS))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--first-sequence", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--write-batch", help="write the masked batch (JSON) for peer_parity")
    p.add_argument("--cram-json", help="peer_parity's JSON output, to compare the loss")
    p.add_argument("--cram-grads", help="peer_parity's --grads-out safetensors, to compare every gradient")
    p.add_argument("--tolerance", type=float, help="exit 1 when the loss's relative difference exceeds this "
                   "(or a gradient's exceeds 100x this), or the masking differs")

    t = sub.add_parser("train", help="the recipe on cram's token shards under a budget, then the val loss")
    t.add_argument("--data", required=True)
    t.add_argument("--budget", required=True)
    t.add_argument("--preset", default="crammed_bert", choices=sorted(PRESETS))
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument("--micro-batch", type=int, default=0, help="0: 512 on CUDA, 8 on the CPU")
    t.add_argument("--batch-target", type=int, default=8192)
    t.add_argument("--ramp-end", type=float, default=0.6)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-batches", type=int, default=8)
    t.add_argument("--max-steps", type=int, default=0)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--no-compile", action="store_true")
    t.add_argument("--metrics", help="also write the JSON lines to this file")

    args = ap.parse_args(argv)
    {"bench": cmd_bench, "parity": cmd_parity, "train": cmd_train}[args.mode](args)


if __name__ == "__main__":
    main()
