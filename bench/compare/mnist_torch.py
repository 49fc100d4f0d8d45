#!/usr/bin/env python3
"""The course's model in PyTorch, for bench/compare/compare.sh.

The same network as nn::make_mnist_model (nn/model.hpp): Conv2D 32 3x3 relu,
max-pool 2x2, flatten, dense 100 relu, dense 10, softmax cross-entropy;
started as Keras starts it (glorot_uniform weights, zero biases), trained
with plain SGD on the same IDX files, one batch at a time. Only the training
loop is timed: the batches are slices of one shuffled index tensor, so no
data loader is timed.

Prints one line:
  RESULT seconds=<training time> steps=<batches> accuracy=<test accuracy> rss_mb=<peak RSS> blas=<library>
where <library> is the BLAS shared library this process actually mapped
(from /proc/self/maps): Debian's libblas.so.3 is an alternative that points
either to the optimized OpenBLAS or to the slow reference BLAS (netlib).
"""
import argparse
import os
import resource
import sys
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 8:
        sys.exit(f"mnist_torch.py: {path}: not an unsigned-byte IDX file")
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 32, 3)          # (N, 1, 28, 28) -> (N, 32, 26, 26)
        self.pool = nn.MaxPool2d(2)              # -> (N, 32, 13, 13)
        self.dense = nn.Linear(32 * 13 * 13, 100)
        self.dense_1 = nn.Linear(100, 10)
        for layer in (self.conv, self.dense, self.dense_1):   # Keras's initialisers
            nn.init.xavier_uniform_(layer.weight)             # = glorot_uniform
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        x = torch.relu(self.dense(torch.flatten(x, 1)))
        return self.dense_1(x)                   # logits; the loss applies the softmax


def loaded_blas():
    """The BLAS libraries mapped into this process, by their real paths."""
    found = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                name = os.path.basename(path)
                if "blas" in name or "mkl" in name or "lapack" in name and "blas" in path:
                    found.add(os.path.realpath(path))
    except OSError:
        pass
    return ",".join(sorted(found)) or "none"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/mnist")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=0, help="stop after N batches (0: one whole epoch)")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    x_train = torch.from_numpy(read_idx(os.path.join(a.data, "train-images-idx3-ubyte")).astype(np.float32) / 255.0)
    y_train = torch.from_numpy(read_idx(os.path.join(a.data, "train-labels-idx1-ubyte")).astype(np.int64))
    x_test = torch.from_numpy(read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0)
    y_test = torch.from_numpy(read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte")).astype(np.int64))
    x_train, x_test = x_train.unsqueeze(1), x_test.unsqueeze(1)   # NCHW: (N, 1, 28, 28)

    model = Net()
    loss_fn = nn.CrossEntropyLoss()   # the batch mean of -log softmax(logits)[label]
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    n = x_train.shape[0]
    steps = (n + a.batch_size - 1) // a.batch_size
    if a.max_steps > 0:
        steps = min(steps, a.max_steps)
    order = torch.randperm(n)
    start = time.perf_counter()
    for s in range(steps):
        idx = order[s * a.batch_size:(s + 1) * a.batch_size]
        opt.zero_grad()
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start

    with torch.no_grad():
        correct = sum(int((model(x_test[i:i + 1000]).argmax(1) == y_test[i:i + 1000]).sum())
                      for i in range(0, x_test.shape[0], 1000))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"RESULT seconds={seconds:.3f} steps={steps} accuracy={correct / x_test.shape[0]:.4f} rss_mb={rss_mb:.0f}"
          f" blas={loaded_blas()}")


if __name__ == "__main__":
    main()
