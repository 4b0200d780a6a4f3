#!/usr/bin/python3
"""PyTorch reference for onnas: side-by-side benchmarks and gradient cross-checks.

Never needed by the build or the tests; the C++ benchmarks call it as a subprocess
when it is available. Every subcommand prints exactly one JSON object on stdout
(diagnostics go to stderr). Exit status 3 when torch cannot be imported.

Subcommands (see bench/README.md for examples):
  cnn        train the API example's small CNN step by step, report step times
  cnn-grads  one forward/backward of that CNN from --init on --images, write grads
  search     one first-order DARTS step (architecture + weight step) of the search
             supernet of docs/PARAMS.md per iteration, in one of the memory modes
             full | ops | ops+pairs | ops+pairs+sbs (ONNAS.md sections 3-6)
  grads      one forward/backward of the full supernet from --init on --images,
             write every parameter's gradient as "<name>@grad"
  --self-test (or self-test): exact-SBS check, gradients of ops+pairs+sbs equal
             those of ops+pairs for the same sampled configuration (1e-4 relative)

Semantics shared with the C++ side (docs/PARAMS.md, /work/shared/ONNAS.md):
  * batch norm: eps 1e-5, batch statistics; no affine parameters in the supernet.
  * mixed op: sum_o softmax(alpha_e)[o] * op_o(x); node: sum_p softmax(beta_j)[p] *
    (edge_a + edge_b); loss: mean cross-entropy.
  * op sampling ("ops" modes): one sample per DARTS step and per alpha row, i.e. the
    normal (resp. reduction) cells share the gradient-op choice of each edge, as they
    share alpha. Non-gradient ops run under no_grad and their weighted output is a
    constant; their alpha entries are detached inside the softmax, so they get no
    gradient (the gradient ops' weights are still normalised over all k ops).
    Likewise for the non-gradient pairs of a node and their beta entries.
"""

import argparse
import json
import math
import os
import random
import resource
import statistics
import struct
import subprocess
import sys
import time
from collections import OrderedDict

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.stderr.write("compare_pytorch.py: PyTorch/numpy not available (%s)\n" % e)
    sys.exit(3)

BN_EPS = 1e-5
MODES = ("full", "ops", "ops+pairs", "ops+pairs+sbs")
FEWSHOT_OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "conv_1x5_5x1",
               "conv_3x3", "sep_conv_3x3", "dil_conv_3x3"]
DARTS_OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
             "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ----------------------------------------------------------------------------
# safetensors, by hand
# ----------------------------------------------------------------------------

_ST_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    """Returns (OrderedDict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError("%s: header length %d exceeds the file" % (path, n))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    out = OrderedDict()
    for name, info in header.items():
        dt = _ST_DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, info["dtype"]))
        b, e = info["data_offsets"]
        shape = [int(s) for s in info["shape"]]
        arr = np.frombuffer(data[b:e], dtype=dt).copy()
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError("%s: tensor %s has %d elements, shape %s" % (path, name, arr.size, shape))
        out[name] = arr.reshape(shape)
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (f32/f64/i32/i64). Written atomically."""
    rev = {np.dtype(v).str: k for k, v in _ST_DTYPES.items()}
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks, off = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        key = rev.get(a.dtype.str)
        if key is None:
            raise ValueError("tensor %s: unsupported dtype %s" % (name, a.dtype))
        raw = a.tobytes()
        header[name] = {"dtype": key, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def load_batch(path):
    t, _ = read_safetensors(path)
    if "x" not in t or "y" not in t:
        raise ValueError("%s: needs tensors 'x' [N,C,H,W] f32 and 'y' [N] int" % path)
    x = torch.from_numpy(t["x"].astype(np.float32))
    y = torch.from_numpy(t["y"].astype(np.int64)).reshape(-1)
    if x.dim() != 4 or y.shape[0] != x.shape[0]:
        raise ValueError("%s: x must be [N,C,H,W] and y [N], got %s and %s"
                         % (path, list(x.shape), list(y.shape)))
    return x, y


# ----------------------------------------------------------------------------
# The small CNN of the API example
# ----------------------------------------------------------------------------

class SmallCNN(nn.Module):
    def __init__(self, in_ch=1, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32, eps=BN_EPS)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, eps=BN_EPS)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128, eps=BN_EPS)
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 3, 2, 1)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(x.mean(dim=(2, 3)))


def cmd_cnn(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = SmallCNN(args.in_ch, args.classes)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = [(torch.randn(args.batch, args.in_ch, args.size, args.size),
                torch.randint(0, args.classes, (args.batch,))) for _ in range(4)]
    times = []
    for it in range(args.warmup + args.steps):
        x, y = batches[it % len(batches)]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        dt = (time.perf_counter() - t0) * 1e3
        if it >= args.warmup:
            times.append(dt)
    med = statistics.median(times)
    emit({"model": "cnn", "images_per_second_median": args.batch * 1e3 / med,
          "step_ms_median": med, "step_ms_all": times, "threads": args.threads,
          "batch": args.batch, "final_loss": float(loss), "peak_rss_bytes": peak_rss_bytes(),
          "torch_version": torch.__version__})


def cmd_cnn_grads(args):
    torch.set_num_threads(args.threads)
    x, y = load_batch(args.images)
    model = SmallCNN(x.shape[1], args.classes)
    init, _ = read_safetensors(args.init)
    sd = model.state_dict()
    missing = [k for k in sd if k not in init and not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit("cnn-grads: %s lacks %s" % (args.init, ", ".join(missing)))
    for k in sd:
        if k in init:
            if list(init[k].shape) != list(sd[k].shape):
                raise SystemExit("cnn-grads: %s has shape %s, expected %s"
                                 % (k, list(init[k].shape), list(sd[k].shape)))
            sd[k] = torch.from_numpy(init[k].astype(np.float32))
    model.load_state_dict(sd)
    model.train()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    out = OrderedDict()
    for name, p in model.named_parameters():
        out[name + "@grad"] = p.grad.detach().numpy().astype(np.float32)
    # running statistics after this one training-mode forward (momentum 0.1,
    # unbiased variance, as PyTorch does)
    for name, b in model.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            out[name + "@updated"] = b.detach().numpy().astype(np.float32)
    write_safetensors(args.out, out, {"loss": repr(float(loss)), "source": "compare_pytorch.py cnn-grads"})
    emit({"model": "cnn", "loss": float(loss), "out": args.out, "tensors": len(out),
          "torch_version": torch.__version__})


# ----------------------------------------------------------------------------
# The search supernet (docs/PARAMS.md), functional over a name -> tensor dict
# ----------------------------------------------------------------------------

class Config:
    def __init__(self, args):
        self.C = args.C
        self.cells = args.cells
        self.reductions = sorted(int(r) for r in str(args.reductions).split(",") if r.strip() != "")
        self.nodes = args.nodes
        self.classes = args.classes
        self.in_ch = args.in_ch
        self.size = args.size
        self.ops = FEWSHOT_OPS if args.ops == "fewshot" else DARTS_OPS
        self.stem_multiplier = 3

    def num_edges(self):
        return sum(2 + j for j in range(self.nodes))

    def first_edge(self, j):
        return sum(2 + t for t in range(j))

    @staticmethod
    def pairs(j):
        n = 2 + j
        return [(a, b) for a in range(n) for b in range(a + 1, n)]

    def is_reduction(self, i):
        return i in self.reductions

    def cell_layout(self):
        """Per cell: dict(C, reduction, reduction_prev, C_pp, C_p); and C_last."""
        out = []
        c_pp = c_p = self.stem_multiplier * self.C
        c = self.C
        red_prev = False
        for i in range(self.cells):
            red = self.is_reduction(i)
            if red:
                c *= 2
            out.append(dict(C=c, reduction=red, reduction_prev=red_prev, C_pp=c_pp, C_p=c_p))
            c_pp, c_p = c_p, self.nodes * c
            red_prev = red
        return out, c_p


# ---- parameter shapes, mirroring the names of docs/PARAMS.md ----

def op_param_shapes(op, C, stride):
    k = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "dil_conv_3x3": 3, "dil_conv_5x5": 5, "conv_3x3": 3}
    if op in ("none", "max_pool_3x3", "avg_pool_3x3"):
        return {}
    if op == "skip_connect":
        return {} if stride == 1 else {"conv1": [C // 2, C, 1, 1], "conv2": [C // 2, C, 1, 1]}
    if op == "conv_1x5_5x1":
        return {"conv1x5": [C, C, 1, 5], "conv5x1": [C, C, 5, 1]}
    if op in ("conv_3x3", "dil_conv_3x3", "dil_conv_5x5"):
        return {"dw": [C, 1, k[op], k[op]], "pw": [C, C, 1, 1]}
    if op in ("sep_conv_3x3", "sep_conv_5x5"):
        return {"dw1": [C, 1, k[op], k[op]], "pw1": [C, C, 1, 1],
                "dw2": [C, 1, k[op], k[op]], "pw2": [C, C, 1, 1]}
    raise ValueError("unknown op " + op)


def supernet_param_shapes(cfg):
    shapes = OrderedDict()
    shapes["stem.conv.weight"] = [cfg.stem_multiplier * cfg.C, cfg.in_ch, 3, 3]
    layout, c_last = cfg.cell_layout()
    for i, L in enumerate(layout):
        p = "cells.%d." % i
        if L["reduction_prev"]:
            shapes[p + "pre0.conv1.weight"] = [L["C"] // 2, L["C_pp"], 1, 1]
            shapes[p + "pre0.conv2.weight"] = [L["C"] // 2, L["C_pp"], 1, 1]
        else:
            shapes[p + "pre0.conv.weight"] = [L["C"], L["C_pp"], 1, 1]
        shapes[p + "pre1.conv.weight"] = [L["C"], L["C_p"], 1, 1]
        for j in range(cfg.nodes):
            for a in range(2 + j):
                e = cfg.first_edge(j) + a
                stride = 2 if (L["reduction"] and a < 2) else 1
                for op in cfg.ops:
                    for layer, shp in op_param_shapes(op, L["C"], stride).items():
                        shapes["%snodes.%d.edges.%d.%s.%s.weight" % (p, j, e, op, layer)] = shp
    shapes["classifier.weight"] = [cfg.classes, c_last]
    shapes["classifier.bias"] = [cfg.classes]
    for kind in ("normal", "reduce"):
        shapes["alpha." + kind] = [cfg.num_edges(), len(cfg.ops)]
    for kind in ("normal", "reduce"):
        for j in range(cfg.nodes):
            shapes["beta.%s.%d" % (kind, j)] = [len(cfg.pairs(j))]
    return shapes


def is_arch(name):
    return name.startswith("alpha.") or name.startswith("beta.")


def init_supernet_params(cfg, seed):
    """PyTorch's default init (uniform +-1/sqrt(fan_in)); alpha, beta 1e-3 * N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    P = OrderedDict()
    for name, shp in supernet_param_shapes(cfg).items():
        if is_arch(name):
            t = 1e-3 * torch.randn(shp, generator=g)
        else:
            if len(shp) == 4:
                fan_in = shp[1] * shp[2] * shp[3]
            elif len(shp) == 2:
                fan_in = shp[1]
            else:  # classifier.bias: fan_in of the classifier
                fan_in = cfg.cell_layout()[1]
            bound = 1.0 / math.sqrt(fan_in)
            t = (torch.rand(shp, generator=g) * 2 - 1) * bound
        P[name] = t.contiguous()
    return P


# ---- forward pieces ----

def bn(x):
    return F.batch_norm(x, None, None, None, None, training=True, eps=BN_EPS)


def stem(P, x):
    return bn(F.conv2d(x, P["stem.conv.weight"], padding=1))


def relu_conv_bn(P, prefix, x):
    return bn(F.conv2d(F.relu(x), P[prefix + ".conv.weight"]))


def factorized_reduce(P, prefix, x):
    x = F.relu(x)
    a = F.conv2d(x, P[prefix + ".conv1.weight"], stride=2)
    b = F.conv2d(x[:, :, 1:, 1:], P[prefix + ".conv2.weight"], stride=2)
    return bn(torch.cat([a, b], dim=1))


def preprocess(P, prefix, x, reduce):
    return factorized_reduce(P, prefix, x) if reduce else relu_conv_bn(P, prefix, x)


def dw_pw_bn(x, dw, pw, stride, pad, dilation):
    x = F.conv2d(F.relu(x), dw, stride=stride, padding=pad, dilation=dilation, groups=x.shape[1])
    return bn(F.conv2d(x, pw))


def op_forward(P, prefix, op, x, stride):
    """One candidate op; prefix = 'cells.i.nodes.j.edges.e.<op>'."""
    w = lambda layer: P[prefix + "." + layer + ".weight"]
    if op == "none":
        return torch.zeros_like(x[:, :, ::stride, ::stride])
    if op == "max_pool_3x3":
        return bn(F.max_pool2d(x, 3, stride, 1))
    if op == "avg_pool_3x3":
        return bn(F.avg_pool2d(x, 3, stride, 1, count_include_pad=False))
    if op == "skip_connect":
        return x if stride == 1 else factorized_reduce(P, prefix, x)
    if op == "conv_1x5_5x1":
        y = F.conv2d(F.relu(x), w("conv1x5"), stride=(1, stride), padding=(0, 2))
        return bn(F.conv2d(y, w("conv5x1"), stride=(stride, 1), padding=(2, 0)))
    if op == "conv_3x3":
        return dw_pw_bn(x, w("dw"), w("pw"), stride, 1, 1)
    if op in ("sep_conv_3x3", "sep_conv_5x5"):
        pad = 1 if op == "sep_conv_3x3" else 2
        y = dw_pw_bn(x, w("dw1"), w("pw1"), stride, pad, 1)
        return dw_pw_bn(y, w("dw2"), w("pw2"), 1, pad, 1)
    if op == "dil_conv_3x3":
        return dw_pw_bn(x, w("dw"), w("pw"), stride, 2, 2)
    if op == "dil_conv_5x5":
        return dw_pw_bn(x, w("dw"), w("pw"), stride, 4, 2)
    raise ValueError("unknown op " + op)


def masked_softmax(logits, grad_index_set):
    """softmax(logits) where only the entries in grad_index_set carry gradient."""
    if grad_index_set is None or not logits.requires_grad:
        return F.softmax(logits, dim=-1)
    mask = torch.zeros(logits.shape[-1], dtype=torch.bool)
    mask[list(grad_index_set)] = True
    return F.softmax(torch.where(mask, logits, logits.detach()), dim=-1)


def mixed_edge(P, prefix, ops, x, alpha_row, stride, grad_ops):
    """sum_o softmax(alpha)[o] * op_o(x). grad_ops: None (all ops get gradients) or the
    set of op indices that do; the others are computed under no_grad as constants."""
    if not torch.is_grad_enabled():
        w = F.softmax(alpha_row, dim=-1)
        return sum(w[o] * op_forward(P, prefix + "." + op, op, x, stride) for o, op in enumerate(ops))
    w = masked_softmax(alpha_row, grad_ops)
    live, const = None, None
    for o, op in enumerate(ops):
        if grad_ops is None or o in grad_ops:
            y = w[o] * op_forward(P, prefix + "." + op, op, x, stride)
            live = y if live is None else live + y
        else:
            with torch.no_grad():
                y = w[o] * op_forward(P, prefix + "." + op, op, x, stride)
                const = y if const is None else const + y
    if const is None:
        return live
    return const if live is None else live + const


def node_sum(edges, beta, pairs, grad_pair):
    """sum_p softmax(beta)[p] * (edge_a + edge_b); grad_pair None = every pair gets
    gradients, else only that pair (the others are constants)."""
    if not torch.is_grad_enabled():
        w = F.softmax(beta, dim=-1)
        return sum(w[p] * (edges[a] + edges[b]) for p, (a, b) in enumerate(pairs))
    w = masked_softmax(beta, None if grad_pair is None else {grad_pair})
    live, const = None, None
    for p, (a, b) in enumerate(pairs):
        if grad_pair is None or p == grad_pair:
            y = w[p] * (edges[a] + edges[b])
            live = y if live is None else live + y
        else:
            with torch.no_grad():
                y = w[p] * (edges[a] + edges[b])
                const = y if const is None else const + y
    return live if const is None else live + const


def cell_forward(P, cfg, layout, i, s0, s1, sample):
    """Cell i of the supernet; sample = Sample (which ops / pairs get gradients)."""
    L = layout[i]
    prefix = "cells.%d" % i
    kind = "reduce" if L["reduction"] else "normal"
    states = [preprocess(P, prefix + ".pre0", s0, L["reduction_prev"]),
              relu_conv_bn(P, prefix + ".pre1", s1)]
    alpha = P["alpha." + kind]
    for j in range(cfg.nodes):
        pairs = cfg.pairs(j)
        gp = sample.grad_pair(kind, j)
        needed = None if gp is None else set(pairs[gp])
        edges = []
        for a in range(2 + j):
            e = cfg.first_edge(j) + a
            stride = 2 if (L["reduction"] and a < 2) else 1
            with torch.set_grad_enabled(torch.is_grad_enabled() and (needed is None or a in needed)):
                edges.append(mixed_edge(P, "%s.nodes.%d.edges.%d" % (prefix, j, e), cfg.ops,
                                        states[a], alpha[e], stride, sample.grad_ops(kind, e)))
        states.append(node_sum(edges, P["beta.%s.%d" % (kind, j)], pairs, gp))
    return torch.cat(states[2:], dim=1)


def head(P, s):
    return F.linear(s.mean(dim=(2, 3)), P["classifier.weight"], P["classifier.bias"])


def supernet_forward(P, cfg, x, sample):
    layout, _ = cfg.cell_layout()
    s0 = s1 = stem(P, x)
    for i in range(cfg.cells):
        s0, s1 = s1, cell_forward(P, cfg, layout, i, s0, s1, sample)
    return head(P, s1)


# ---- sampling (ONNAS.md sections 4 and 5) ----

class Sample:
    """Per alpha row (normal / reduce) and edge: the set of gradient op indices (None =
    all); per node: the gradient pair index (None = all pairs)."""

    def __init__(self, ops=None, pairs=None):
        self.ops = ops or {}
        self.pairs = pairs or {}

    def grad_ops(self, kind, e):
        return self.ops.get((kind, e))

    def grad_pair(self, kind, j):
        return self.pairs.get((kind, j))


class Sampler:
    """Expectation-based op ranking with exploration, and uniform gradient pairs, from
    one seeded generator."""

    def __init__(self, cfg, seed, k_grad, total_steps, explore=0.2, history=5):
        self.cfg, self.k_grad, self.total = cfg, k_grad, total_steps
        self.explore, self.history = explore, history
        self.rng = random.Random(seed)
        self.deltas = {"normal": [], "reduce": []}
        self.step = 0

    def record_alpha_update(self, kind, before, after):
        d = self.deltas[kind]
        d.append((after - before).detach().clone())
        del d[:-self.history]

    def expected_alpha(self, kind, alpha_now):
        d = self.deltas[kind]
        if len(d) < self.history:
            return alpha_now.detach()
        remaining = max(self.total - self.step, 0)
        return alpha_now.detach() + remaining * torch.stack(d).mean(dim=0)

    def draw(self, P, mode):
        s = Sample()
        k = len(self.cfg.ops)
        if mode in ("ops", "ops+pairs", "ops+pairs+sbs") and self.k_grad < k:
            for kind in ("normal", "reduce"):
                score = self.expected_alpha(kind, P["alpha." + kind])
                for e in range(self.cfg.num_edges()):
                    order = sorted(range(k), key=lambda o: (-float(score[e, o]), o))
                    if self.rng.random() < self.explore:
                        chosen = self.rng.sample(order[1:], min(self.k_grad, k - 1))
                    else:
                        chosen = order[:self.k_grad]
                    s.ops[(kind, e)] = frozenset(chosen)
        if mode in ("ops+pairs", "ops+pairs+sbs"):
            for kind in ("normal", "reduce"):
                for j in range(self.cfg.nodes):
                    n = len(self.cfg.pairs(j))
                    if n > 1:
                        s.pairs[(kind, j)] = self.rng.randrange(n)
        self.step += 1
        return s


# ---- backward passes ----

def backward_one_shot(P, cfg, x, y, sample):
    loss = F.cross_entropy(supernet_forward(P, cfg, x, sample), y)
    loss.backward()
    return float(loss)


def backward_sbs(P, cfg, x, y, sample, variant="recompute", drop_s0=False):
    """Exact step-by-step back-propagation: one phase per cell, last first, then the
    stem. Each phase hands the gradients w.r.t. both of the cell's inputs (s0 and s1)
    on to the saved output gradients of the producing cells (index -1 = stem).
    drop_s0=True imitates the research code (s0 path dropped; approximate), used only
    by the self-test to show that the comparison can fail."""
    layout, _ = cfg.cell_layout()
    n = cfg.cells
    need_weights = any(p.requires_grad for k, p in P.items() if not is_arch(k))
    saved = {}
    outs = None
    if variant == "checkpoint":
        with torch.no_grad():
            outs = {-1: stem(P, x)}
            for c in range(n):
                outs[c] = cell_forward(P, cfg, layout, c, outs[max(c - 2, -1)], outs[c - 1], sample)
    loss_val = None
    for i in range(n - 1, -1, -1):
        if outs is not None:
            in0, in1 = outs[max(i - 2, -1)], outs[i - 1]
        else:
            with torch.no_grad():
                s0 = s1 = stem(P, x)
                for c in range(i):
                    s0, s1 = s1, cell_forward(P, cfg, layout, c, s0, s1, sample)
            in0, in1 = s0, s1
        need_in = need_weights or i > 0
        in0 = in0.detach().requires_grad_(need_in)
        in1 = in1.detach().requires_grad_(need_in)
        out = cell_forward(P, cfg, layout, i, in0, in1, sample)
        if i == n - 1:
            loss = F.cross_entropy(head(P, out), y)
            loss_val = float(loss)
            loss.backward()
        else:
            g = saved.pop(i, None)
            if g is not None and out.requires_grad:
                out.backward(g)
        del out
        if need_in:
            for idx, t in ((max(i - 2, -1), in0), (i - 1, in1)):
                if t.grad is not None and not (drop_s0 and t is in0):
                    saved[idx] = t.grad if idx not in saved else saved[idx] + t.grad
        del in0, in1
    if need_weights and -1 in saved:
        s = stem(P, x)
        s.backward(saved.pop(-1))
    return loss_val


def backward_mode(P, cfg, x, y, sample, mode, sbs_variant="recompute"):
    if mode == "ops+pairs+sbs":
        return backward_sbs(P, cfg, x, y, sample, sbs_variant)
    return backward_one_shot(P, cfg, x, y, sample)


def set_trainable(P, which):
    """which: 'arch', 'weights' or 'all'."""
    for k, p in P.items():
        p.requires_grad_(which == "all" or (which == "arch") == is_arch(k))
        p.grad = None


class SavedTensorMeter:
    """Bytes of tensors saved for backward that are alive, deduplicated by storage."""

    class _Handle:
        __slots__ = ("t", "meter", "ptr")

        def __init__(self, t, meter, ptr):
            self.t, self.meter, self.ptr = t, meter, ptr

        def __del__(self):
            self.meter._release(self.ptr)

    def __init__(self, exclude_ptrs=()):
        self.live = {}  # ptr -> [count, nbytes, excluded]
        self.total = self.total_act = 0
        self.peak = self.peak_act = 0
        self.exclude = set(exclude_ptrs)

    def _pack(self, t):
        st = t.storage()
        ptr, nb = st.data_ptr(), st.nbytes()
        ent = self.live.get(ptr)
        if ent is None:
            ex = ptr in self.exclude
            self.live[ptr] = [1, nb, ex]
            self.total += nb
            if not ex:
                self.total_act += nb
            self.peak = max(self.peak, self.total)
            self.peak_act = max(self.peak_act, self.total_act)
        else:
            ent[0] += 1
        return SavedTensorMeter._Handle(t, self, ptr)

    @staticmethod
    def _unpack(h):
        return h.t

    def _release(self, ptr):
        ent = self.live.get(ptr)
        if ent is None:
            return
        ent[0] -= 1
        if ent[0] == 0:
            self.total -= ent[1]
            if not ent[2]:
                self.total_act -= ent[1]
            del self.live[ptr]

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)


class DartsStep:
    """One first-order DARTS step: architecture step on a validation batch, then a
    weight step on a training batch (ONNAS.md section 3)."""

    def __init__(self, P, cfg, args):
        self.P, self.cfg, self.args = P, cfg, args
        arch = [p for k, p in P.items() if is_arch(k)]
        self.weights = [p for k, p in P.items() if not is_arch(k)]
        self.arch_opt = torch.optim.Adam(arch, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        if args.optimizer == "sgd":
            self.w_opt = torch.optim.SGD(self.weights, lr=args.w_lr, momentum=0.9, weight_decay=args.w_wd)
        else:
            self.w_opt = torch.optim.Adam(self.weights, lr=args.w_lr, betas=(0.0, 0.999), weight_decay=args.w_wd)
        self.sampler = Sampler(cfg, args.seed, args.k_grad, args.warmup + args.steps + 1)

    def arch_step(self, xv, yv, sample):
        P = self.P
        set_trainable(P, "arch")
        before = {k: P["alpha." + k].detach().clone() for k in ("normal", "reduce")}
        loss = backward_mode(P, self.cfg, xv, yv, sample, self.args.mode, self.args.sbs_variant)
        self.arch_opt.step()
        for k in ("normal", "reduce"):
            self.sampler.record_alpha_update(k, before[k], P["alpha." + k])
        return loss

    def weight_step(self, xt, yt, sample):
        P = self.P
        set_trainable(P, "weights")
        loss = backward_mode(P, self.cfg, xt, yt, sample, self.args.mode, self.args.sbs_variant)
        torch.nn.utils.clip_grad_norm_(self.weights, 5.0)
        self.w_opt.step()
        return loss


def random_batch(cfg, batch, g):
    x = torch.randn(batch, cfg.in_ch, cfg.size, cfg.size, generator=g)
    y = torch.randint(0, cfg.classes, (batch,), generator=g)
    return x, y


def cmd_search(args):
    if args.mode == "all":
        return search_all_modes(args)
    torch.set_num_threads(args.threads)
    cfg = Config(args)
    P = init_supernet_params(cfg, args.seed)
    params_bytes = sum(p.numel() * p.element_size() for p in P.values())
    g = torch.Generator().manual_seed(args.seed + 1)
    batches = [random_batch(cfg, args.batch, g) for _ in range(4)]
    stepper = DartsStep(P, cfg, args)
    baseline_rss = peak_rss_bytes()
    times, arch_ms, w_ms = [], [], []
    saved_peak = saved_act_peak = saved_arch_peak = None
    # measurement step (not timed): saved-tensor accounting during the weight step
    meter_iter = min(args.warmup, 1) if args.warmup > 0 else None
    total_iters = args.warmup + args.steps + (1 if meter_iter is None else 0)
    for it in range(total_iters):
        xv, yv = batches[(2 * it) % 4]
        xt, yt = batches[(2 * it + 1) % 4]
        sample = stepper.sampler.draw(P, args.mode)
        measure = (meter_iter is not None and it == meter_iter - 1) or (meter_iter is None and it == total_iters - 1)
        if measure:
            ptrs = [p.storage().data_ptr() for p in P.values()]
            ma = SavedTensorMeter(ptrs)
            with ma.hooks():
                stepper.arch_step(xv, yv, sample)
            mw = SavedTensorMeter(ptrs)
            with mw.hooks():
                loss = stepper.weight_step(xt, yt, sample)
            saved_peak, saved_act_peak, saved_arch_peak = mw.peak, mw.peak_act, ma.peak
            continue
        t0 = time.perf_counter()
        stepper.arch_step(xv, yv, sample)
        t1 = time.perf_counter()
        loss = stepper.weight_step(xt, yt, sample)
        t2 = time.perf_counter()
        if it >= args.warmup:
            times.append((t2 - t0) * 1e3)
            arch_ms.append((t1 - t0) * 1e3)
            w_ms.append((t2 - t1) * 1e3)
    emit({"mode": args.mode, "step_ms_median": statistics.median(times), "step_ms_all": times,
          "arch_ms_median": statistics.median(arch_ms), "weight_ms_median": statistics.median(w_ms),
          "peak_rss_bytes": peak_rss_bytes(), "baseline_rss_bytes": baseline_rss,
          "saved_bytes_peak": saved_peak, "saved_activation_bytes_peak": saved_act_peak,
          "saved_bytes_peak_arch_step": saved_arch_peak,
          "params_bytes": params_bytes, "num_params": sum(p.numel() for p in P.values()),
          "threads": args.threads, "batch": args.batch, "C": cfg.C, "cells": cfg.cells,
          "classes": cfg.classes, "k_grad": args.k_grad, "ops": args.ops,
          "sbs_variant": args.sbs_variant if args.mode == "ops+pairs+sbs" else None,
          "final_loss": loss, "torch_version": torch.__version__})


def search_all_modes(args):
    """Each mode in its own process, so each peak RSS is that mode's own."""
    results = []
    for mode in MODES:
        argv = [sys.executable, os.path.abspath(__file__), "search", "--mode", mode]
        for k, v in vars(args).items():
            if k in ("cmd", "mode", "func", "self_test"):
                continue
            argv += ["--" + k.replace("_", "-"), str(v)]
        r = subprocess.run(argv, stdout=subprocess.PIPE, check=True)
        results.append(json.loads(r.stdout.decode().strip().splitlines()[-1]))
    emit({"modes": results})


# ---- gradients for the C++ cross-check ----

def load_supernet_params(cfg, path):
    init, _ = read_safetensors(path)
    shapes = supernet_param_shapes(cfg)
    P = OrderedDict()
    problems = []
    for name, shp in shapes.items():
        if name not in init:
            problems.append("missing " + name)
        elif list(init[name].shape) != shp:
            problems.append("%s has shape %s, expected %s" % (name, list(init[name].shape), shp))
        else:
            P[name] = torch.from_numpy(init[name].astype(np.float32))
    if problems:
        raise SystemExit("grads: %s does not match the configuration: %s%s"
                         % (path, "; ".join(problems[:10]), " ..." if len(problems) > 10 else ""))
    extra = [k for k in init if k not in shapes and not k.endswith("@grad")]
    if extra:
        sys.stderr.write("grads: ignoring %d tensors not in the supernet (e.g. %s)\n" % (len(extra), extra[0]))
    return P


def cmd_grads(args):
    torch.set_num_threads(args.threads)
    x, y = load_batch(args.images)
    args.in_ch, args.size = int(x.shape[1]), int(x.shape[2])
    cfg = Config(args)
    P = load_supernet_params(cfg, args.init)
    set_trainable(P, "all")
    loss = backward_one_shot(P, cfg, x, y, Sample())
    out = OrderedDict((k + "@grad", p.grad.detach().numpy().astype(np.float32)) for k, p in P.items())
    write_safetensors(args.out, out, {"loss": repr(loss), "source": "compare_pytorch.py grads"})
    emit({"model": "supernet", "loss": loss, "out": args.out, "tensors": len(out),
          "torch_version": torch.__version__})


# ---- self-test: exact SBS ----

def grads_for(P, cfg, x, y, sample, mode, variant="recompute"):
    set_trainable(P, "all")
    loss = backward_mode(P, cfg, x, y, sample, mode, variant)
    return loss, {k: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                  for k, p in P.items()}


def compare_grads(ga, gb, tol):
    """Worst per-tensor ||a - b|| / ||b||; the denominator is floored at 1e-3 times the
    largest tensor norm, so tensors whose gradient is ~0 by cancellation (e.g. a beta
    entry at 1e-8) are judged against the scale of the whole gradient."""
    floor = 1e-3 * max(float(g.norm()) for g in gb.values())
    worst, worst_name = 0.0, None
    for k in ga:
        d = float((ga[k] - gb[k]).norm())
        ref = max(float(gb[k].norm()), floor)
        rel = d / ref if ref > 0 else d
        if rel > worst:
            worst, worst_name = rel, k
    return worst, worst_name, worst <= tol


def cmd_self_test(args):
    torch.set_num_threads(args.threads)
    cfg = Config(args)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    P = OrderedDict((k, v.to(dtype)) for k, v in init_supernet_params(cfg, args.seed).items())
    g = torch.Generator().manual_seed(args.seed + 1)
    x, y = random_batch(cfg, args.batch, g)
    x = x.to(dtype)
    sampler = Sampler(cfg, args.seed, args.k_grad, 10)
    sample = sampler.draw(P, "ops+pairs")
    checks = []
    for name, ref_mode, sbs_sample in (("ops+pairs+sbs(recompute) == ops+pairs", "ops+pairs", sample),
                                       ("ops+pairs+sbs(checkpoint) == ops+pairs", "ops+pairs", sample),
                                       ("full+sbs == full", "full", Sample())):
        variant = "checkpoint" if "checkpoint" in name else "recompute"
        la, ga = grads_for(P, cfg, x, y, sbs_sample, "ops+pairs+sbs", variant)
        lb, gb = grads_for(P, cfg, x, y, sbs_sample, ref_mode)
        worst, wname, ok = compare_grads(ga, gb, 1e-4)
        nonzero = sum(1 for k in gb if float(gb[k].abs().max()) > 0)
        checks.append({"check": name, "ok": ok and abs(la - lb) <= 1e-5 * max(1.0, abs(lb)),
                       "max_rel_err": worst, "worst_tensor": wname, "loss_sbs": la, "loss_ref": lb,
                       "tensors_with_nonzero_grad": nonzero, "tensors": len(gb)})
    # the check has teeth: the research code's SBS (s0 gradient dropped) must differ
    set_trainable(P, "all")
    backward_sbs(P, cfg, x, y, sample, "recompute", drop_s0=True)
    gd = {k: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)) for k, p in P.items()}
    _, gb = grads_for(P, cfg, x, y, sample, "ops+pairs")
    worst, wname, same = compare_grads(gd, gb, 1e-4)
    checks.append({"check": "sbs with s0 gradient dropped != ops+pairs (negative control)",
                   "ok": not same, "max_rel_err": worst, "worst_tensor": wname})
    ok = all(c["ok"] for c in checks)
    emit({"self_test": "exact_sbs", "ok": ok, "checks": checks, "tolerance": 1e-4,
          "dtype": args.dtype})
    return 0 if ok else 1


# ----------------------------------------------------------------------------

def add_search_options(p):
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--cells", type=int, default=4)
    p.add_argument("--reductions", default="1,3")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--in-ch", type=int, default=1)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--k-grad", type=int, default=2)
    p.add_argument("--ops", choices=("fewshot", "darts"), default="fewshot")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--self-test" in argv:
        argv = ["self-test"] + [a for a in argv if a != "--self-test"]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("cnn", help="small CNN training-step benchmark")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--in-ch", type=int, default=1)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--classes", type=int, default=10)
    p.set_defaults(func=cmd_cnn)

    p = sub.add_parser("cnn-grads", help="gradients of the small CNN for a given init and batch")
    p.add_argument("--init", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_cnn_grads)

    p = sub.add_parser("search", help="first-order DARTS step benchmark of the supernet")
    p.add_argument("--mode", choices=MODES + ("all",), default="full")
    add_search_options(p)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--w-lr", type=float, default=0.025)
    p.add_argument("--w-wd", type=float, default=0.0)
    p.add_argument("--sbs-variant", choices=("recompute", "checkpoint"), default="recompute")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("grads", help="gradients of the full supernet for a given init and batch")
    p.add_argument("--init", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    add_search_options(p)
    p.set_defaults(func=cmd_grads)

    p = sub.add_parser("self-test", help="exact-SBS check (run by hand)")
    add_search_options(p)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.set_defaults(func=cmd_self_test)

    args = ap.parse_args(argv)
    rc = args.func(args)
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
