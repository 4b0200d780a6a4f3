#!/usr/bin/env python3
"""Writes the small valid seed files of fuzz/corpus/<format>/ (each a few KiB at most).

Run from anywhere: python3 fuzz/make_seeds.py. Images use Debian's libstb (libstb-dev)
through ctypes for PNG, JPEG and BMP; PGM/PPM are written by hand. The leading
bytes some harnesses take as options are described in each fuzz_<format>.cc.
"""
import ctypes
import gzip
import json
import os
import struct
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(fmt, name, data):
    d = os.path.join(ROOT, fmt)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(entries, metadata=None):
    """entries: [(name, dtype, shape, raw bytes)] in data order."""
    header, offset, data = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def i32(*v):
    return struct.pack("<%di" % len(v), *v)


def seeds_safetensors():
    put("safetensors", "weights", safetensors(
        [("conv.weight", "F32", [2, 1, 2, 2], f32(*[0.5 * i for i in range(8)])),
         ("step", "I32", [], i32(7)),
         ("empty", "F32", [0, 3], b""),
         ("labels", "I32", [3], i32(1, 2, 3))],
        {"onnas.kind.conv.weight": "weight", "epoch": "3"}))
    put("safetensors", "one_tensor", safetensors([("w", "F32", [2, 2], f32(1, 2, 3, 4))]))
    put("safetensors", "metadata_only", safetensors([], {"format": "pt"}))


def seeds_genotype():
    def cell(ops):
        return [[{"op": ops[2 * n], "input": n}, {"op": ops[2 * n + 1], "input": n + 1}] for n in range(3)]
    g = {"normal": cell(["sep_conv_3x3", "skip_connect", "dil_conv_3x3", "max_pool_3x3", "avg_pool_3x3", "sep_conv_5x5"]),
         "reduce": cell(["max_pool_3x3", "max_pool_3x3", "skip_connect", "dil_conv_5x5", "sep_conv_3x3", "avg_pool_3x3"])}
    put("genotype", "genotype.json", json.dumps(g, indent=1).encode())
    put("genotype", "wrapped.json", json.dumps({"genotype": g, "epoch": 1}).encode())


def be32(*v):
    return struct.pack(">%dI" % len(v), *v)


def seeds_idx():
    n, rows, cols = 3, 4, 5
    images = be32(0x803, n, rows, cols) + bytes((i * 7) % 256 for i in range(n * rows * cols))
    labels = be32(0x801, n) + bytes([0, 2, 1])
    for flags, name in [(0, "plain"), (3, "gzip_both"), (1, "gzip_images"), (8, "classes_10")]:
        put("idx", name, bytes([flags]) + struct.pack("<I", len(images)) + images + labels)
    gz_images, gz_labels = gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0)
    put("idx", "raw_gzip", bytes([0]) + struct.pack("<I", len(gz_images)) + gz_images + gz_labels)


def seeds_cifar():
    record = bytes([3]) + bytes((i * 13) % 256 for i in range(3072))
    put("cifar", "one_record", bytes([0]) + record)
    put("cifar", "two_records_gzip", bytes([1]) + record + bytes([9]) + record[1:])
    put("cifar", "raw_gzip", bytes([0]) + gzip.compress(record, mtime=0))


def seeds_image():
    stb = ctypes.CDLL("libstb.so.0")
    w, h = 6, 5
    grey = bytes((x * 40 + y * 9) % 256 for y in range(h) for x in range(w))
    rgb = bytes((x * 40 + y * 9 + c * 70) % 256 for y in range(h) for x in range(w) for c in range(3))
    with tempfile.TemporaryDirectory() as tmp:
        def via_stb(fn, name, comp, pixels, *extra):
            path = os.path.join(tmp, name).encode()
            if not fn(path, w, h, comp, pixels, *extra):
                raise SystemExit("stb could not write " + name)
            with open(path, "rb") as f:
                return f.read()
        files = {
            "grey.png": via_stb(stb.stbi_write_png, "g.png", 1, grey, w),
            "rgb.png": via_stb(stb.stbi_write_png, "c.png", 3, rgb, w * 3),
            "rgb.jpg": via_stb(stb.stbi_write_jpg, "c.jpg", 3, rgb, 90),
            "grey.jpg": via_stb(stb.stbi_write_jpg, "g.jpg", 1, grey, 90),
            "rgb.bmp": via_stb(stb.stbi_write_bmp, "c.bmp", 3, rgb),
            "grey.pgm": b"P5\n%d %d\n255\n" % (w, h) + grey,
            "rgb.ppm": b"P6\n%d %d\n255\n" % (w, h) + rgb,
        }
    # Option byte: 1 or 3 channels, output sides 8 and 28.
    for i, (name, data) in enumerate(sorted(files.items())):
        put("image", name, bytes([(i & 1) | (1 << 1 if i % 3 else 6 << 1)]) + data)


def seeds_buffer_list():
    buffers = [{"name": "conv1.out", "bytes": 4096, "first": 0, "last": 2, "op": "conv2d", "kind": "activation"},
               {"name": "relu1.out", "bytes": 4096, "first": 1, "last": 3, "may_share_with": 0},
               {"name": "conv2.out", "bytes": 1024, "first": 3, "last": 4, "alignment": 128},
               {"name": "scratch", "bytes": 100, "first": 2, "last": 2, "kind": "scratch"}]
    put("buffer_list", "small.json", json.dumps(buffers).encode())
    put("buffer_list", "one.json", b'[{"name": "x", "bytes": 1, "first": 0, "last": 0}]')
    # Each size within its bound, their sum not (the list that once hung the planner).
    put("buffer_list", "huge_sum.json", json.dumps(
        [{"name": "b%d" % i, "bytes": 2 ** 61 - 1, "first": 0, "last": 1} for i in range(9)]).encode())


def seeds_checkpoint():
    w = ("cells.0.pre0.conv.weight", "F32", [2, 2, 1, 1], f32(0.5, -1, 2, 0.25))
    adam = ("adam.m.cells.0.pre0.conv.weight", "F32", [2, 2, 1, 1], f32(0, 0.1, 0, 0))
    put("checkpoint", "search", safetensors([w, adam, ("sampler.history.normal.0", "F32", [2], f32(1e-3, -2e-3))],
                                            {"onnas": "search checkpoint", "run": '{"seed":1}', "step": "12",
                                             "log": '{"step":11,"loss":2.1}\n'}))
    put("checkpoint", "train", safetensors([w], {"onnas": "training checkpoint", "epoch": "3", "log": ""}))
    put("checkpoint", "meta", safetensors([w], {"meta_epoch": "2", "run": "{}"}))


def seeds_meta_cell():
    """The smallest meta cell of docs/PARAMS.md's supernet: C = 2, 2 cells (the second a
    reduction), 1 node, ops max_pool_3x3 / skip_connect / conv_3x3, 1x4x4 images, 2
    classes. Each meta cell tensor is the largest shape over the cells using it."""
    C, nodes = 2, 1
    space = {"ops": ["max_pool_3x3", "skip_connect", "conv_3x3"], "nodes": nodes, "cells": 2, "reductions": [1],
             "channels": C, "stem_multiplier": 3, "in_channels": 1, "height": 4, "width": 4, "classes": 2}
    def zeros(*shape):
        n = 1
        for d in shape:
            n *= d
        return f32(*[0.01 * (i % 7) for i in range(n)])
    C1 = 2 * C  # the reduction cell's width
    tensors = [("stem.conv.weight", [3 * C, 1, 3, 3]),
               ("alpha.normal", [2, 3]), ("beta.normal.0", [1]),
               ("alpha.reduce", [2, 3]), ("beta.reduce.0", [1]),
               ("classifier.weight", [2, nodes * C1]), ("classifier.bias", [2]),
               ("meta_cell.pre0.conv.weight", [C1, 3 * C, 1, 1]),
               ("meta_cell.pre1.conv.weight", [C1, 3 * C, 1, 1])]
    for e in range(2):
        p = "meta_cell.nodes.0.edges.%d." % e
        tensors += [(p + "skip_connect.conv1.weight", [C1 // 2, C1, 1, 1]),
                    (p + "skip_connect.conv2.weight", [C1 // 2, C1, 1, 1]),
                    (p + "conv_3x3.dw.weight", [C1, 1, 3, 3]),
                    (p + "conv_3x3.pw.weight", [C1, C1, 1, 1])]
    put("meta_cell", "smallest", safetensors(
        [(name, "F32", shape, zeros(*shape)) for name, shape in tensors],
        {"format": "onnas meta cell", "version": "1", "search_space": json.dumps(space, separators=(",", ":"))}))


if __name__ == "__main__":
    seeds_safetensors()
    seeds_genotype()
    seeds_idx()
    seeds_cifar()
    seeds_image()
    seeds_buffer_list()
    seeds_checkpoint()
    seeds_meta_cell()
