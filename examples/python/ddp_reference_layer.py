#!/usr/bin/python3
"""mhc.torch.MHCLayerRef (mhc.h's layer, float64, CPU) inside a model trained data-parallel:
two processes (torch.multiprocessing spawn), torch.distributed with the gloo backend on loopback
(127.0.0.1, a free port picked at run time), DistributedDataParallel. Each rank takes half of the
batch; the gradients DDP averages must equal one process's full-batch gradients. Needs torch and
`make python`; no network beyond loopback, a few seconds:

    /usr/bin/python3 examples/python/ddp_reference_layer.py

It prints the largest |DDP gradient - full-batch gradient| over all parameters and exits 1 when
it is above 1e-12 (2 when a rank fails). The model: the mHC layer with its RMSNorm weight, the
sublayer F a linear map of layer_input (f_out = F(layer_input), so the gradients reach the layer
through both of its outputs), then a linear readout of the summed streams; loss = mean squared
error over the tokens (a mean, so the average of the two halves' gradients is the full batch's).
"""
import datetime
import os
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

import mhc  # noqa: E402

T, n, C = 8, 4, 6          # T tokens (the batch), n streams of C channels
WORLD = 2
TOL = 1e-12


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)   # the same initial parameters in every process
        self.mhc = mhc.torch.MHCLayerRef(n, C, preset="dsv4", norm_weight=True)
        with torch.no_grad():
            self.mhc.base.normal_()
            self.mhc.norm_weight.uniform_(0.5, 1.5)
        self.f = torch.nn.Linear(C, C, dtype=torch.float64)      # the sublayer F
        self.readout = torch.nn.Linear(C, C, dtype=torch.float64)

    def forward(self, x):
        li, out = self.mhc(x, branch=self.f)
        return self.readout(out.sum(1)) + li


def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(T, n, C, generator=g, dtype=torch.float64), torch.randn(T, C, generator=g, dtype=torch.float64)


def grads(model, x, y):
    model.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    return {k: p.grad.detach().clone() for k, p in model.named_parameters()}


def worker(rank, port, out_dir):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60))
    try:
        model = torch.nn.parallel.DistributedDataParallel(Net())
        x, y = data()
        h = T // WORLD
        g = grads(model, x[rank * h:(rank + 1) * h], y[rank * h:(rank + 1) * h])
        torch.save({k[len("module."):]: v for k, v in g.items()}, os.path.join(out_dir, "rank%d.pt" % rank))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def maxdiff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in b)


def main():
    t0 = time.time()
    if sys.platform.startswith("linux") and os.path.exists("/sys/class/net/lo"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")   # gloo's own address on loopback too
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not dist.is_available() or not dist.is_gloo_available():
        print("ddp_reference_layer: this torch has no torch.distributed gloo backend")
        return 2
    x, y = data()
    model = Net()
    full = grads(model, x, y)                                 # one process, the whole batch
    half = grads(model, x[:T // WORLD], y[:T // WORLD])       # what rank 0 has before the all-reduce
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mhc_ddp_") as d:
        try:
            mp.spawn(worker, args=(port, d), nprocs=WORLD, join=True)
        except Exception as e:   # a rank raised (its traceback is printed above)
            print("ddp_reference_layer: a rank failed: %s" % (e,))
            return 2
        ranks = [torch.load(os.path.join(d, "rank%d.pt" % r)) for r in range(WORLD)]
    diff = maxdiff(ranks[0], full)
    between = maxdiff(ranks[1], ranks[0])
    print("ddp_reference_layer: %d ranks (gloo, 127.0.0.1:%d), %d tokens each, %d parameters (%s)"
          % (WORLD, port, T // WORLD, sum(v.numel() for v in full.values()), ", ".join(full)))
    for k in full:
        print("  %-18s |grad| max %.3e  |DDP - full batch| max %.3e" % (k, full[k].abs().max().item(),
                                                                         (ranks[0][k] - full[k]).abs().max().item()))
    print("ddp_reference_layer: max |DDP gradient - full-batch gradient| = %.3e (tolerance %.0e); rank 1 - rank 0: "
          "%.3e; one half's own gradient differs from the full batch's by %.3e; %.1f s"
          % (diff, TOL, between, maxdiff(half, full), time.time() - t0))
    ok = diff <= TOL and between <= TOL
    print("ddp_reference_layer: %s" % ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
