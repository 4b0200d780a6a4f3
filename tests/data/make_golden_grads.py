#!/usr/bin/python3
"""Writes tests/data/golden_grads.safetensors: gradients of a tiny search supernet
computed by PyTorch, the truth tests/nas/test_golden_grads.cc holds our gradients to in
every memory mode. Run once by hand (python3-torch from Debian); the build and the
tests never need PyTorch:

    /usr/bin/python3 tests/data/make_golden_grads.py

The supernet is bench/compare_pytorch.py's, which follows docs/PARAMS.md name for
name (its forward, mixed ops, pair sums and sampling semantics are imported from
there). The space: C = 2, 3 cells (a reduction at 1, so cell 2 preprocesses s0 with a
factorized reduce), 2 nodes (node 1 weighs 3 pairs), all ten op kinds (none, both pools,
skip and its factorized reduce, conv_1x5_5x1, conv_3x3, the sep and dil convs 3x3 and
5x5), 1x8x8 images, 3 classes, a batch of 4.

The parameters are drawn in float32 (those values are stored, and the C++ side uses
them as they are), alpha and beta at 0.5 N(0, 1) so every softmax entry matters. The
gradients are computed in float64 from the same float32 values and stored rounded to
float32 (safetensors F32: what our reader takes).

Three samples, fixed by a rule (k = 10 ops, E = 5 edges per cell type):
  full       every op of every edge and every pair of every node gets gradients
  ops        edge e of the normal cells: ops {3e mod k, (3e + 5) mod k}; of the
             reduction cells {(3e + 1) mod k, (3e + 6) mod k}; every pair
  ops+pairs  the same ops; node 0's single pair, and node 1's pair 2 (normal) and
             pair 1 (reduction)
The other ops run as constants and the other pairs too; their alpha / beta entries
get exactly zero gradient (ONNAS.md sections 4, 5). Step-by-step back-propagation is
exact, so ops+pairs+sbs (both variants) must give the ops+pairs gradients; this script
checks that in float64 with PyTorch's own SBS too.

Contents: "param/<name>" (every weight, alpha and beta), "x" [4, 1, 8, 8] F32, "y" [4]
I32, "sample/<mode>/grad_ops/<normal|reduce>" [E, k] I32 (1 = gradient op),
"sample/<mode>/grad_pair/<normal|reduce>" [nodes] I32 (-1 = every pair),
"grad/<mode>/<name>" F32; metadata "space" (the SearchSpace JSON of our loader),
"loss/<mode>", "torch_version".
"""

import json
import os
import sys
from collections import OrderedDict
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
import compare_pytorch as ref  # noqa: E402  (exits with status 3 without torch)

torch = ref.torch
np = ref.np

ALL_OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "conv_1x5_5x1", "conv_3x3",
           "sep_conv_3x3", "dil_conv_3x3", "sep_conv_5x5", "dil_conv_5x5"]
SEED = 20
BATCH = 4


def make_config():
    cfg = ref.Config(SimpleNamespace(C=2, cells=3, reductions="1", nodes=2, classes=3, in_ch=1, size=8,
                                     ops="fewshot"))
    cfg.ops = list(ALL_OPS)
    return cfg


def space_json(cfg):
    return {"ops": cfg.ops, "nodes": cfg.nodes, "cells": cfg.cells, "reductions": cfg.reductions,
            "channels": cfg.C, "stem_multiplier": cfg.stem_multiplier, "in_channels": cfg.in_ch,
            "height": cfg.size, "width": cfg.size, "classes": cfg.classes}


def samples(cfg):
    k, E = len(cfg.ops), cfg.num_edges()
    ops = {}
    for e in range(E):
        ops[("normal", e)] = frozenset({(3 * e) % k, (3 * e + 5) % k})
        ops[("reduce", e)] = frozenset({(3 * e + 1) % k, (3 * e + 6) % k})
    pairs = {("normal", 0): 0, ("reduce", 0): 0, ("normal", 1): 2, ("reduce", 1): 1}
    return OrderedDict([("full", ref.Sample()), ("ops", ref.Sample(ops=ops)), ("ops+pairs", ref.Sample(ops=ops, pairs=pairs))])


def sample_tensors(cfg, mode, s):
    k, E = len(cfg.ops), cfg.num_edges()
    out = {}
    for kind in ("normal", "reduce"):
        grad_ops = np.ones((E, k), dtype=np.int32)
        for e in range(E):
            chosen = s.grad_ops(kind, e)
            if chosen is not None:
                grad_ops[e, :] = 0
                grad_ops[e, sorted(chosen)] = 1
        grad_pair = np.array([-1 if s.grad_pair(kind, j) is None else s.grad_pair(kind, j) for j in range(cfg.nodes)],
                             dtype=np.int32)
        out["sample/%s/grad_ops/%s" % (mode, kind)] = grad_ops
        out["sample/%s/grad_pair/%s" % (mode, kind)] = grad_pair
    return out


def gradients(P, cfg, x, y, sample, mode, variant="recompute"):
    ref.set_trainable(P, "all")
    loss = ref.backward_mode(P, cfg, x, y, sample, mode, variant)
    return loss, OrderedDict((k, (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone())
                             for k, p in P.items())


def main():
    torch.manual_seed(SEED)
    cfg = make_config()
    P32 = ref.init_supernet_params(cfg, SEED)
    g = torch.Generator().manual_seed(SEED + 1)
    for name in P32:
        if ref.is_arch(name):
            P32[name] = 0.5 * torch.randn(P32[name].shape, generator=g)
    x32 = torch.randn((BATCH, cfg.in_ch, cfg.size, cfg.size), generator=g)
    y = torch.tensor([0, 2, 1, 2], dtype=torch.int64)

    P = OrderedDict((k, v.double()) for k, v in P32.items())
    x = x32.double()
    tensors = OrderedDict()
    for name, v in P32.items():
        tensors["param/" + name] = v.numpy().astype(np.float32)
    tensors["x"] = x32.numpy().astype(np.float32)
    tensors["y"] = y.numpy().astype(np.int32)
    metadata = {"space": json.dumps(space_json(cfg)), "torch_version": torch.__version__,
                "generator": "tests/data/make_golden_grads.py", "dtype": "computed in float64, stored as float32"}
    for mode, s in samples(cfg).items():
        tensors.update(sample_tensors(cfg, mode, s))
        loss, grads = gradients(P, cfg, x, y, s, mode)
        metadata["loss/" + mode] = repr(loss)
        for name, gr in grads.items():
            tensors["grad/%s/%s" % (mode, name)] = gr.numpy().astype(np.float32)
        # SBS is exact: PyTorch's own step-by-step passes give the same gradients.
        sbs_mode = "ops+pairs+sbs" if mode != "full" else None
        if sbs_mode:
            for variant in ("recompute", "checkpoint"):
                lb, gb = gradients(P, cfg, x, y, s, sbs_mode, variant)
                worst, where, ok = ref.compare_grads(gb, grads, 1e-10)
                if not ok or abs(lb - loss) > 1e-12:
                    raise SystemExit("SBS (%s) differs from %s in float64: %g at %s" % (variant, mode, worst, where))
        nonzero = sum(1 for gr in grads.values() if float(gr.abs().max()) > 0)
        sys.stderr.write("%-10s loss %.6f, %d of %d tensors with a nonzero gradient\n" % (mode, loss, nonzero, len(grads)))
    out = os.path.join(HERE, "golden_grads.safetensors")
    ref.write_safetensors(out, tensors, metadata)
    sys.stderr.write("wrote %s (%d tensors, %d bytes)\n" % (out, len(tensors), os.path.getsize(out)))


if __name__ == "__main__":
    main()
