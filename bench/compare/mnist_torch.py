#!/usr/bin/env python3
"""The course's models in PyTorch, for bench/compare/compare.sh.

--model course (the default): the same network as nn::make_mnist_model
(nn/model.hpp): Conv2D 32 3x3 relu, max-pool 2x2, flatten, dense 100 relu,
dense 10, softmax cross-entropy; trained with plain SGD(0.01) on all 60,000
training images.

--model convnet: Keras's "Simple MNIST convnet" (keras.io/examples/vision/
mnist_convnet, chapter 12): Conv2D 32 3x3 relu, max-pool 2x2, Conv2D 64 3x3
relu, max-pool 2x2, flatten, Dropout(0.5), dense 10, softmax cross-entropy
(34,826 parameters); Adam(lr 0.001, betas (0.9, 0.999), eps 1e-7: Keras's
defaults) on the first 54,000 training images (Keras's validation_split=0.1
holds out the last 6,000; they are not evaluated here).

Both are started as Keras starts them (glorot_uniform kernels, zero biases)
and read the same IDX files, one batch at a time. Only the training loop is
timed: the batches are slices of one shuffled index tensor, so no data
loader is timed. --memory-format and --mkldnn choose how PyTorch runs the
convolutions (compare.sh probes them).

--inference DIR: no training. The course model with the weights chapter 10
saved in DIR (the .npy files, converted to PyTorch's layouts), in its best
inference setting (model.eval(), torch.inference_mode(), and the options
below): one image through the model and the softmax, the first call (cold)
and the median of --warm-calls more, then the loss and accuracy over the
10,000 test images at --batch-size (Keras's evaluate: 32), the fastest of
--evaluate-runs. Its accuracy is the course's for the same weights: a check
that both compute the same thing. --jit freeze runs the model as
torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model))),
PyTorch's own inference path (which runs the convolution through oneDNN
even with --mkldnn off). Prints one line:
  INFERENCE evaluate_s=<seconds> images_per_s=<rate> loss=<test loss> accuracy=<test accuracy>
            predict_cold_us=<first call> predict_warm_us=<median> blas=<library> conv=<kernel>

Otherwise prints one line:
  RESULT seconds=<training time> steps=<batches> accuracy=<test accuracy> rss_mb=<peak RSS> blas=<library> conv=<kernel>
where <library> is the BLAS shared library this process actually mapped
(from /proc/self/maps): Debian's libblas.so.3 is an alternative that points
either to the optimized OpenBLAS or to the slow reference BLAS (netlib); and
<kernel> is the convolution operator PyTorch's profiler saw in one forward
pass after training (aten::mkldnn_convolution when oneDNN ran it).
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


class CourseNet(nn.Module):
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


class ConvNet(nn.Module):
    """keras.io's Simple MNIST convnet. PyTorch's Flatten takes (C, H, W) order
    where Keras's takes (H, W, C): a fixed permutation of the dense kernel's
    rows, which changes neither the work nor, with random weights, the training."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 32, 3)          # (N, 1, 28, 28) -> (N, 32, 26, 26)
        self.conv_1 = nn.Conv2d(32, 64, 3)       # (N, 32, 13, 13) -> (N, 64, 11, 11)
        self.pool = nn.MaxPool2d(2)              # halves, rounding down: 26 -> 13, 11 -> 5
        self.dropout = nn.Dropout(0.5)           # active in model.train(), the identity in model.eval()
        self.dense = nn.Linear(64 * 5 * 5, 10)
        for layer in (self.conv, self.conv_1, self.dense):    # Keras's initialisers
            nn.init.xavier_uniform_(layer.weight)             # = glorot_uniform
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv(x)))
        x = self.pool(torch.relu(self.conv_1(x)))
        return self.dense(self.dropout(torch.flatten(x, 1)))  # logits; the loss applies the softmax


def conv_operator(model, x):
    """The convolution operator one forward pass on x runs, by profiler name."""
    if isinstance(model, torch.jit.ScriptModule):   # --jit freeze: its graph's prim:: ops escape the profiler
        return ",".join(sorted({n.kind() for n in model.graph.nodes() if "conv" in n.kind()})) or "none"
    with torch.no_grad(), torch.autograd.profiler.profile() as prof:
        model(x)
    names = sorted({e.name for e in prof.function_events if "conv" in e.name and e.name != "aten::conv2d"
                    and e.name != "aten::convolution" and e.name != "aten::_convolution"})
    return ",".join(names) or "none"


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


def load_course_weights(model, folder):
    """The weights ch10-fit saved (Keras's layouts) into CourseNet (PyTorch's)."""
    def npy(name):
        return np.load(os.path.join(folder, name + ".npy")).astype(np.float32)
    kernel = npy("conv2d.kernel")                   # (3, 3, 1, 32): height, width, in, out
    dense = npy("dense.kernel")                     # (5408, 100), rows in Keras's flatten order (13, 13, 32)
    with torch.no_grad():
        model.conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))   # (32, 1, 3, 3)
        model.conv.bias.copy_(torch.from_numpy(npy("conv2d.bias")))
        # PyTorch's flatten takes (C, H, W) order: the same rows, permuted.
        model.dense.weight.copy_(torch.from_numpy(
            dense.reshape(13, 13, 32, 100).transpose(3, 2, 0, 1).reshape(100, 32 * 13 * 13).copy()))
        model.dense.bias.copy_(torch.from_numpy(npy("dense.bias")))
        model.dense_1.weight.copy_(torch.from_numpy(npy("dense_1.kernel").T.copy()))   # (10, 100)
        model.dense_1.bias.copy_(torch.from_numpy(npy("dense_1.bias")))


def time_inference(a, model, x_test, y_test):
    """--inference: predict one image cold and warm, then evaluate the test set."""
    model.eval()
    x_one = x_test[0:1].clone(memory_format=torch.preserve_format)    # a batch of one
    if a.jit == "freeze":
        with torch.no_grad():
            model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))
    with torch.inference_mode():
        start = time.perf_counter()
        p = torch.softmax(model(x_one), 1)                     # model.predict: the probabilities
        cold = time.perf_counter() - start
        warm = []
        for _ in range(a.warm_calls):
            start = time.perf_counter()
            p = torch.softmax(model(x_one), 1)
            warm.append(time.perf_counter() - start)
        warm.sort()
        fastest = None
        n = x_test.shape[0]
        for _ in range(a.evaluate_runs):                      # model.evaluate: loss and accuracy
            start = time.perf_counter()
            loss_sum = torch.zeros((), dtype=torch.float64)
            correct = torch.zeros((), dtype=torch.int64)
            for i in range(0, n, a.batch_size):
                logits = model(x_test[i:i + a.batch_size])
                yb = y_test[i:i + a.batch_size]
                loss_sum += nn.functional.cross_entropy(logits, yb, reduction="sum")
                correct += (logits.argmax(1) == yb).sum()
            seconds = time.perf_counter() - start
            fastest = seconds if fastest is None else min(fastest, seconds)
    del p
    print(f"INFERENCE evaluate_s={fastest:.4f} images_per_s={n / fastest:.0f} loss={float(loss_sum) / n:.4f}"
          f" accuracy={int(correct) / n:.4f} predict_cold_us={1e6 * cold:.1f}"
          f" predict_warm_us={1e6 * warm[len(warm) // 2]:.1f} blas={loaded_blas()} conv={conv_operator(model, x_one)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/mnist")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=0, help="stop after N batches (0: one whole epoch)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", choices=("course", "convnet"), default="course")
    p.add_argument("--memory-format", choices=("nchw", "channels_last"), default="nchw",
                   help="the layout of the images and the weights (PyTorch's native one is NCHW)")
    p.add_argument("--mkldnn", choices=("on", "off"), default="on",
                   help="torch.backends.mkldnn.enabled: oneDNN's convolutions, or PyTorch's own")
    p.add_argument("--inference", metavar="DIR", help="time inference with the course's weights in DIR; no training")
    p.add_argument("--warm-calls", type=int, default=1000, help="--inference: warm predict calls, of which the median")
    p.add_argument("--evaluate-runs", type=int, default=3, help="--inference: evaluate runs, of which the fastest")
    p.add_argument("--evaluate-images", type=int, default=0, help="--inference: evaluate the first N test images (0: all)")
    p.add_argument("--jit", choices=("off", "freeze"), default="off",
                   help="--inference: run a frozen TorchScript model optimized for inference")
    a = p.parse_args()
    if a.inference and a.model != "course":
        sys.exit("mnist_torch.py: --inference times the course model only")

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    torch.backends.mkldnn.enabled = a.mkldnn == "on"
    if a.inference:   # no training: the test set only
        x_train, y_train = torch.zeros(0, 28, 28), torch.zeros(0, dtype=torch.int64)
    else:
        x_train = torch.from_numpy(read_idx(os.path.join(a.data, "train-images-idx3-ubyte")).astype(np.float32) / 255.0)
        y_train = torch.from_numpy(read_idx(os.path.join(a.data, "train-labels-idx1-ubyte")).astype(np.int64))
    x_test = torch.from_numpy(read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0)
    y_test = torch.from_numpy(read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte")).astype(np.int64))
    x_train, x_test = x_train.unsqueeze(1), x_test.unsqueeze(1)   # NCHW: (N, 1, 28, 28)
    if a.evaluate_images > 0:   # --inference's probes: a shorter evaluate
        x_test, y_test = x_test[:a.evaluate_images], y_test[:a.evaluate_images]

    if a.model == "convnet":
        x_train, y_train = x_train[:54000], y_train[:54000]   # validation_split=0.1: the last 6,000 held out
        model = ConvNet()
        # Keras's Adam defaults. PyTorch adds eps to the bias-corrected sqrt(v),
        # Keras to the uncorrected one (keras/src/optimizers/adam.py): the same
        # work per step, a slightly different epsilon in the first steps.
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    else:
        model = CourseNet()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
    if a.memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x_train = x_train.contiguous(memory_format=torch.channels_last)
        x_test = x_test.contiguous(memory_format=torch.channels_last)
    if a.inference:
        load_course_weights(model, a.inference)
        time_inference(a, model, x_test, y_test)
        return
    loss_fn = nn.CrossEntropyLoss()   # the batch mean of -log softmax(logits)[label]
    model.train()
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

    model.eval()   # Dropout off, as Keras's evaluate
    with torch.no_grad():
        correct = sum(int((model(x_test[i:i + 1000]).argmax(1) == y_test[i:i + 1000]).sum())
                      for i in range(0, x_test.shape[0], 1000))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"RESULT seconds={seconds:.3f} steps={steps} accuracy={correct / x_test.shape[0]:.4f} rss_mb={rss_mb:.0f}"
          f" blas={loaded_blas()} conv={conv_operator(model, x_test[:a.batch_size])}")


if __name__ == "__main__":
    main()
