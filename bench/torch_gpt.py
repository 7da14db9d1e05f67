#!/usr/bin/python3
"""bench/torch_gpt.py - the PyTorch peer of bench/bench_train.c (run by `make bench` through popen).

The same computations as mhc.h, in PyTorch eager mode on the CPU, float32:

  gpt    one training step (forward + backward + clip_grad_norm_(1.0) + AdamW) of the GPT of
         gpt/gpt.h: embeddings wte + wpe; x = expand(e) to n streams (none: x = e); per
         sublayer (attention, MLP) the dsv4 mHC pre step (mix = x W^T * rsqrt(mean(x^2) + 1e-6),
         h_pre = sigmoid(.) + 1e-6, h_post = 2 sigmoid(.), A = (softmax-start Sinkhorn, 20
         iterations, eps 1e-6)^T, layer_input = sum_i h_pre[i] x[i]), f = F(rmsnorm(layer_input)
         * w), x = A x + h_post f (none: x = x + F(rmsnorm(x) * w)); the head h = sum_i
         (sigmoid(.) + 1e-6) x[i]; rmsnorm; lm_head (no bias); mean cross-entropy. Attention:
         qkv = h W^T + b, causal multi-head softmax(q k^T / sqrt(d)) v, out W^T + b. MLP: gelu (tanh
         approximation) of h W^T + b, then W^T + b (hidden 4C). AdamW(betas (0.9, 0.95), eps 1e-8,
         weight decay 0.1 on the weight matrices and embeddings, 0 on norms, biases, scale, base).
  layer  the mHC layer alone: pre forward, post forward (out = A x + h_post f_out), and the
         backward of both with random upstream gradients d_out [T,n,C] and d_layer_input [T,C].

Prints one line "median_s <seconds>" (the median over --reps timed repetitions after --warmup
untimed ones) and "threads <k>".
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F


def pre(x, fn, scale, base, n, iters=20, eps=1e-6):
    """x [T,n,C] -> layer_input [T,C], h_post [T,n], A [T,n,n] (dsv4)."""
    T, _, C = x.shape
    xf = x.reshape(T, n * C)
    mix = (xf @ fn.t()) * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
    h_pre = torch.sigmoid(mix[:, :n] * scale[0] + base[:n]) + 1e-6
    h_post = torch.sigmoid(mix[:, n:2 * n] * scale[1] + base[n:2 * n]) * 2.0
    s = torch.softmax((mix[:, 2 * n:] * scale[2] + base[2 * n:]).reshape(T, n, n), -1) + eps
    s = s / (s.sum(-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        s = s / (s.sum(-1, keepdim=True) + eps)
        s = s / (s.sum(-2, keepdim=True) + eps)
    a = s.transpose(-1, -2)
    layer_input = torch.einsum("ti,tic->tc", h_pre, x)
    return layer_input, h_pre, h_post, a


def post(x, a, h_post, f):
    return torch.einsum("tij,tjc->tic", a, x) + h_post[:, :, None] * f[:, None, :]


def rmsnorm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class GPT(torch.nn.Module):
    def __init__(self, vocab, seq, dim, heads, layers, n, variant):
        super().__init__()
        self.n, self.heads, self.none = n, heads, variant == "none"
        P = lambda *s: torch.nn.Parameter(torch.randn(*s) * 0.02)
        Z = lambda *s: torch.nn.Parameter(torch.zeros(*s))
        O = lambda *s: torch.nn.Parameter(torch.ones(*s))
        C, m = dim, 2 * n + n * n
        self.wte, self.wpe = P(vocab, C), P(seq, C)
        self.subs = torch.nn.ModuleList()
        for l in range(2 * layers):
            s = torch.nn.Module()
            hidden = 3 * C if l % 2 == 0 else 4 * C
            if not self.none:
                s.fn, s.scale, s.base = P(m, n * C), torch.nn.Parameter(torch.full((3,), 0.01)), Z(m)
            s.norm = O(C)
            s.w1, s.b1 = P(hidden, C), Z(hidden)
            s.w2, s.b2 = P(C, C if l % 2 == 0 else 4 * C), Z(C)
            self.subs.append(s)
        if not self.none:
            self.hfn, self.hscale, self.hbase = P(n, n * C), torch.nn.Parameter(torch.full((1,), 0.01)), Z(n)
        self.final_norm, self.lm_head = O(C), P(vocab, C)

    def inner(self, s, k, h, B, T):
        a = h @ s.w1.t() + s.b1
        if k == 0:
            BT, C3 = a.shape
            C, H = C3 // 3, self.heads
            q, kk, v = a.view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
            att = (q @ kk.transpose(-1, -2)) * (1.0 / math.sqrt(C // H))
            mask = torch.ones(T, T, dtype=torch.bool).triu(1)
            att = torch.softmax(att.masked_fill(mask, float("-inf")), -1)
            a = (att @ v).transpose(1, 2).reshape(BT, C)
        else:
            a = F.gelu(a, approximate="tanh")
        return a @ s.w2.t() + s.b2

    def forward(self, tokens, targets):
        B, T = tokens.shape
        n = self.n
        e = self.wte[tokens.reshape(-1)] + self.wpe[torch.arange(T).repeat(B)]
        x = e if self.none else e[:, None, :].expand(-1, n, -1).contiguous()
        for l, s in enumerate(self.subs):
            if self.none:
                x = x + self.inner(s, l % 2, rmsnorm(x, s.norm), B, T)
            else:
                li, _, h_post, a = pre(x, s.fn, s.scale, s.base, n)
                x = post(x, a, h_post, self.inner(s, l % 2, rmsnorm(li, s.norm), B, T))
        if not self.none:
            BT, _, C = x.shape
            xf = x.reshape(BT, n * C)
            mix = (xf @ self.hfn.t()) * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)
            h = torch.sigmoid(mix * self.hscale[0] + self.hbase) + 1e-6
            x = torch.einsum("ti,tic->tc", h, x)
        logits = rmsnorm(x, self.final_norm) @ self.lm_head.t()
        return F.cross_entropy(logits, targets.reshape(-1))


def bench(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] if len(ts) % 2 else 0.5 * (ts[len(ts) // 2 - 1] + ts[len(ts) // 2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["gpt", "layer"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--variant", choices=["mhc", "none"], default="mhc")
    ap.add_argument("--T", type=int, default=1024)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.what == "gpt":
        n = 1 if a.variant == "none" else a.n
        model = GPT(a.vocab, a.seq, a.dim, a.heads, a.layers, n, a.variant)
        decay = [p for nm, p in model.named_parameters()
                 if nm in ("wte", "wpe", "lm_head", "hfn") or nm.endswith((".w1", ".w2", ".fn"))]
        ids = set(id(p) for p in decay)
        rest = [p for p in model.parameters() if id(p) not in ids]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
        tokens = torch.randint(0, a.vocab, (a.batch, a.seq))
        targets = torch.randint(0, a.vocab, (a.batch, a.seq))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = model(tokens, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        med = bench(step, a.warmup, a.reps)
    else:
        T, n, C = a.T, a.n, a.dim
        m = 2 * n + n * n
        g = torch.Generator().manual_seed(0)
        x = torch.randn(T, n, C, generator=g).requires_grad_()
        fn = (torch.randn(m, n * C, generator=g) * 0.02).requires_grad_()
        scale = torch.tensor([0.5, 0.5, 1.0]).requires_grad_()
        base = torch.randn(m, generator=g).requires_grad_()
        f_out = torch.randn(T, C, generator=g).requires_grad_()
        d_out = torch.randn(T, n, C, generator=g)
        d_li = torch.randn(T, C, generator=g)
        leaves = (x, fn, scale, base, f_out)

        def step():
            for p in leaves:
                p.grad = None
            li, _, h_post, aa = pre(x, fn, scale, base, n)
            out = post(x, aa, h_post, f_out)
            torch.autograd.backward([out, li], [d_out, d_li])
        med = bench(step, a.warmup, a.reps)
    print("median_s %.6f" % med)
    print("threads %d" % torch.get_num_threads())
    print("torch %s" % torch.__version__)


if __name__ == "__main__":
    main()
