#!/usr/bin/env python3
"""First-order Reptile on the glyph benchmark in PyTorch: a reference for the protocol.

Not part of the build or the tests (PyTorch is a development tool here). It answers one
question the engine's meta-training raised: which inner-loop data lets Reptile learn
something that transfers to unseen classes, at a few hundred meta steps? A plain Conv-4
(3x3 conv, batch norm with the batch's statistics, ReLU, 2x2 max pool; C channels) with
a linear classifier; tasks of 5 classes from images_background (with rotations);
evaluation on 5-way 1-shot tasks of images_evaluation (15 queries per class), adapted
from the meta parameters with --eval-inner plain steps on the support set.

  /usr/bin/python3 bench/reptile_reference.py --train-shots 1                   # the support set of a 1-shot task
  /usr/bin/python3 bench/reptile_reference.py --train-shots 5 --inner-batch 10  # Reptile's protocol

Meta step: --meta-batch tasks, each adapted with --inner steps (plain SGD, or SGD with
--momentum, or Adam with betas 0, 0.999), each step on the whole support set
(--inner-batch 0) or on minibatches drawn from it; the meta parameters move by
--meta-lr x (1 - step / steps) times the mean difference.
"""
import argparse
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--glyphs", default="/var/cache/onnas/glyphs", help="the benchmark's root (scripts/setup.sh --glyphs)")
p.add_argument("--cache", default="", help="an .npz to keep the decoded images in (faster reruns)")
p.add_argument("--C", type=int, default=32, help="channels of every conv")
p.add_argument("--steps", type=int, default=200, help="meta steps")
p.add_argument("--meta-batch", type=int, default=10)
p.add_argument("--inner", type=int, default=5, help="inner steps per meta-training task")
p.add_argument("--inner-lr", type=float, default=0.05)
p.add_argument("--momentum", type=float, default=0.0, help="of the inner SGD")
p.add_argument("--opt", choices=["sgd", "adam"], default="sgd")
p.add_argument("--head", choices=["meta", "zero"], default="meta", help="classifier at each task's start")
p.add_argument("--train-shots", type=int, default=1, help="support images per class of a meta-training task")
p.add_argument("--inner-batch", type=int, default=0, help="images per inner step (0: the whole support set)")
p.add_argument("--meta-lr", type=float, default=1.0)
p.add_argument("--eval-every", type=int, default=100)
p.add_argument("--eval-tasks", type=int, default=200)
p.add_argument("--eval-inner", type=int, default=10, help="inner steps on a 1-shot evaluation task")
p.add_argument("--seed", type=int, default=1)
a = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(a.seed)
rng = np.random.default_rng(a.seed)


def load():
    if a.cache and os.path.exists(a.cache):
        z = np.load(a.cache)
        return z["images_background"], z["images_evaluation"]
    sets = {}
    for part in ("images_background", "images_evaluation"):
        classes = []
        for alphabet in sorted(os.listdir(f"{a.glyphs}/{part}")):
            for ch in sorted(os.listdir(f"{a.glyphs}/{part}/{alphabet}")):
                d = f"{a.glyphs}/{part}/{alphabet}/{ch}"
                classes.append(np.stack([np.array(Image.open(f"{d}/{f}").convert("L")) for f in sorted(os.listdir(d))]))
        sets[part] = np.stack(classes)
    if a.cache:
        np.savez(a.cache, **sets)
    return sets["images_background"], sets["images_evaluation"]


def with_rotations(x):  # [classes, instances, H, W] -> 4x the classes
    return torch.tensor(np.concatenate([np.rot90(x, k, axes=(2, 3)) for k in range(4)]) / 255.0, dtype=torch.float32)


background, evaluation = (with_rotations(x) for x in load())
print(f"classes: {background.shape[0]} background, {evaluation.shape[0]} evaluation", flush=True)


def draw_task(data, shots, queries, r):
    chosen = r.choice(data.shape[0], 5, replace=False)
    sx, sy, qx, qy = [], [], [], []
    for label, c in enumerate(chosen):
        idx = r.permutation(data.shape[1])
        sx.append(data[c, idx[:shots]])
        sy += [label] * shots
        qx.append(data[c, idx[shots:shots + queries]])
        qy += [label] * queries
    return torch.cat(sx)[:, None], torch.tensor(sy), (torch.cat(qx)[:, None] if queries else None), torch.tensor(qy)


def block(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o, track_running_stats=False), nn.ReLU(),
                         nn.MaxPool2d(2))


def conv4():
    return nn.Sequential(block(1, a.C), block(a.C, a.C), block(a.C, a.C), block(a.C, a.C), nn.Flatten(), nn.Linear(a.C, 5))


def start_from(meta):
    model = conv4()
    with torch.no_grad():
        for p_, q in zip(model.parameters(), meta.parameters()):
            p_.copy_(q)
        if a.head == "zero":
            model[-1].weight.zero_()
            model[-1].bias.zero_()
    return model


def adapt(model, x, y, steps, batch):
    if a.opt == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=a.inner_lr, momentum=a.momentum)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=a.inner_lr, betas=(0, 0.999))
    order, at = [], 0
    for _ in range(steps):
        if batch and batch < len(y):  # minibatches without replacement, reshuffled after each pass
            rows = []
            while len(rows) < batch:
                if at == len(order):
                    order, at = list(rng.permutation(len(y))), 0
                rows.append(order[at])
                at += 1
            bx, by = x[rows], y[rows]
        else:
            bx, by = x, y
        opt.zero_grad()
        F.cross_entropy(model(bx), by).backward()
        opt.step()


def evaluate(meta):
    r = np.random.default_rng(1234)  # the same tasks at every evaluation
    acc = []
    for _ in range(a.eval_tasks):
        sx, sy, qx, qy = draw_task(evaluation, 1, 15, r)
        m = start_from(meta)
        adapt(m, sx, sy, a.eval_inner, 0)
        with torch.no_grad():
            acc.append((m(qx).argmax(1) == qy).float().mean().item())
    acc = np.array(acc)
    return acc.mean(), 1.96 * acc.std(ddof=1) / np.sqrt(len(acc))


net = conv4()
t0 = time.time()
for step in range(a.steps + 1):
    if step % a.eval_every == 0 or step == a.steps:
        m, half = evaluate(net)
        print(f"meta step {step}: 5-way 1-shot {100 * m:.2f}% +- {100 * half:.2f}% ({time.time() - t0:.0f} s)", flush=True)
    if step == a.steps:
        break
    diffs = [torch.zeros_like(q) for q in net.parameters()]
    for _ in range(a.meta_batch):
        sx, sy, _, _ = draw_task(background, a.train_shots, 0, rng)
        m = start_from(net)
        adapt(m, sx, sy, a.inner, a.inner_batch)
        for d, p_, q in zip(diffs, m.parameters(), net.parameters()):
            d += (p_.detach() - q.detach()) / a.meta_batch
    lr = a.meta_lr * (1 - step / a.steps)
    with torch.no_grad():
        for q, d in zip(net.parameters(), diffs):
            q += lr * d
