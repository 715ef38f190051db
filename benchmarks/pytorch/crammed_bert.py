#!/usr/bin/env python3
"""The PyTorch peer of cram's crammed-BERT training step, for a side-by-side throughput comparison.

Same architecture as cram::presets::crammed_bert (CRAMMING.md): 16 pre-norm blocks, hidden 768, 12 heads,
fused QKV without bias, GELU-GLU FFN 768->3072->(1536)->768 without biases, scaled sinusoidal positions,
embedding and final LayerNorm (eps 1e-12), tied decoder, sparse prediction on the 25% masked positions.
Runs with bf16 autocast, torch.compile and fused SDPA attention, AdamW (fused) with fp32 master weights.
Measures the micro-step (forward + loss + backward) like bench_cuda_train, and prints one JSON object.

    python3 benchmarks/pytorch/crammed_bert.py --micro-batches 64 128 256 512 --steps 20
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, HIDDEN, HEADS, LAYERS, INTER, SEQ = 32768, 768, 12, 16, 3072, 128
FLOPS_PER_TOKEN, PEAK = 0.623e9, 989e12


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.qkv = nn.Linear(HIDDEN, 3 * HIDDEN, bias=False)
        self.out = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.norm2 = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.ffn_in = nn.Linear(HIDDEN, INTER, bias=False)
        self.ffn_out = nn.Linear(INTER // 2, HIDDEN, bias=False)

    def forward(self, x):
        b, s, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, HEADS, h // HEADS).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)  # non-causal, no mask: fully packed sequences
        x = x + self.out(a.transpose(1, 2).reshape(b, s, h))
        u, gate = self.ffn_in(self.norm2(x)).chunk(2, dim=-1)
        return x + self.ffn_out(u * F.gelu(gate))


class CrammedBert(nn.Module):
    def __init__(self):
        super().__init__()
        self.word = nn.Embedding(VOCAB, HIDDEN, padding_idx=0)
        pos = torch.arange(SEQ, dtype=torch.float64)[:, None]
        freq = torch.pow(10000.0, -torch.arange(0, HIDDEN, 2, dtype=torch.float64) / HIDDEN)
        table = torch.zeros(SEQ, HIDDEN, dtype=torch.float64)
        table[:, 0::2] = torch.sin(pos * freq)
        table[:, 1::2] = torch.cos(pos * freq)
        self.register_buffer("sinusoid", table.float())
        self.pos_scale = nn.Parameter(torch.tensor(1.0 / math.sqrt(HIDDEN)))
        self.emb_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.final_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
        with torch.no_grad():
            self.word.weight[0].zero_()

    def forward(self, ids, masked_positions, targets):
        x = self.word(ids) + self.pos_scale * self.sinusoid[: ids.shape[1]]
        x = self.emb_norm(x)
        for blk in self.blocks:
            x = blk(x)
        x = self.final_norm(x).flatten(0, 1)[masked_positions]  # sparse prediction
        logits = x @ self.word.weight.t()  # tied decoder, no bias
        return F.cross_entropy(logits.float(), targets)


def make_batch(micro, device, gen):
    tokens = torch.randint(5, VOCAB, (micro, SEQ), generator=gen, device="cpu")
    k = round(0.25 * SEQ)
    pos = torch.stack([torch.randperm(SEQ, generator=gen)[:k].sort().values for _ in range(micro)])
    flat = (pos + SEQ * torch.arange(micro)[:, None]).flatten()
    targets = tokens.flatten()[flat].clone()
    ids = tokens.clone().flatten()
    ids[flat] = 4  # [MASK] (the 80/10/10 split does not change the cost)
    return ids.view(micro, SEQ).to(device), flat.to(device), targets.to(device)


def measure(model, step_fn, micro, steps, warmup, device):
    gen = torch.Generator().manual_seed(micro)
    ids, pos, tgt = make_batch(micro, device, gen)
    for _ in range(warmup):
        step_fn(ids, pos, tgt)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step_fn(ids, pos, tgt)
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    tokens = micro * SEQ
    return {"micro_batch": micro, "seconds_per_micro_step": dt, "tokens_per_s": tokens / dt,
            "mfu": tokens / dt * FLOPS_PER_TOKEN / PEAK, "loss": float(loss)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--micro-batches", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device"}))
        return
    device = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    model = CrammedBert().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-12, weight_decay=0.01,
                            fused=True)
    fwd = model if args.no_compile else torch.compile(model)

    def micro_step(ids, pos, tgt):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(ids, pos, tgt)
        loss.backward()
        return loss.detach()

    results = []
    for micro in args.micro_batches:
        try:
            results.append(measure(model, micro_step, micro, args.steps, args.warmup, device))
        except torch.cuda.OutOfMemoryError:
            results.append({"micro_batch": micro, "error": "out of memory"})
        torch.cuda.empty_cache()
    # optimizer step (clip + AdamW), once per accumulated batch
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    opt.step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
    torch.cuda.synchronize()
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "compiled": not args.no_compile,
        "gpu": torch.cuda.get_device_name(0), "parameters": sum(p.numel() for p in model.parameters()),
        "optimizer_step_seconds": (time.perf_counter() - t0) / 10, "micro_steps": results}))


if __name__ == "__main__":
    main()
