#!/usr/bin/python3
"""torch_reference.py - the PyTorch CPU yardstick for ddqc's training and evaluation speed.

It builds the architectures of ddqc's own model builders, layer for layer (nn/mobilenetv2.c:
MobileNetV2 with the s1x3 / s1x2 / imagenet strides; nn/resnet.c: ResNet-20 with option-A
shortcuts), times training steps (forward + backward + SGD momentum with weight decay) and
evaluation-mode forwards on random data, and prints one JSON line: images/s, GFLOP/s, MACs,
parameters and the process's peak resident memory. One process is one configuration, so the
memory figure is that configuration's own.

    apt-get install -y python3-torch python3-torchvision libtcmalloc-minimal4   # once
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
        /usr/bin/python3 bench/torch_reference.py --model mnv2 --width 1.0 --variant s1x3 \
        --batch 64 --threads 2 --channels-last

PyTorch is fastest on this kind of CPU with channels-last tensors and tcmalloc: compare against
that setting. scripts/bench_vs_torch.sh runs this and bench_train alternately and reports median
ratios; absolute numbers on a shared machine drift, ratios measured side by side do not.
The parameter and MAC counts it prints are the ones tests/test_models.c checks ddqc's builders
against.
"""
import argparse
import json
import os
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def divisible(v, d=8):
    """Channel counts as nn/mobilenetv2.c rounds them: to a multiple of 8, never down by 10%."""
    r = max(d, int(v + d / 2) // d * d)
    return r + d if r < 0.9 * v else r


def conv_bn(cin, cout, k, stride, groups=1, relu6=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6()) if relu6 else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = int(cin * t + 0.5)
        parts = [conv_bn(cin, hidden, 1, 1)] if t != 1 else []
        parts += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, 1, relu6=False)]
        self.body = nn.Sequential(*parts)
        self.identity = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.identity else self.body(x)


class MobileNetV2(nn.Module):
    # (expansion t, channels c, repeats n, stride s); the CIFAR variants set some strides to 1
    SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, in_ch, width, variant, num_classes=10, dropout=0.2):
        super().__init__()
        cin, last = divisible(32 * width), divisible(1280 * max(1.0, width))
        layers = [conv_bn(in_ch, cin, 3, 2 if variant == "imagenet" else 1)]
        for s, (t, c, n, stride) in enumerate(self.SETTING):
            if variant != "imagenet" and (s == 1 or (s == 2 and variant == "s1x3")):
                stride = 1
            cout = divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, t))
                cin = cout
        layers.append(conv_bn(cin, last, 1, 1))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(self.dropout(x))


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the shortcut (option A: subsample, zero-pad channels), ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride, relu6=False), nn.ReLU(),
                                  conv_bn(cout, cout, 3, 1, relu6=False))
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        short = x
        if self.stride != 1 or self.pad:
            short = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(self.body(x) + short)


class ResNet(nn.Module):
    def __init__(self, in_ch, depth=20, num_classes=10):
        super().__init__()
        n, cin = (depth - 2) // 6, 16
        layers = [conv_bn(in_ch, 16, 3, 1, relu6=False), nn.ReLU()]
        for stage in range(3):
            cout = 16 << stage
            for b in range(n):
                layers.append(BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.net = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.net(x), 1).flatten(1))


def macs_per_image(model, x):
    """Multiply-accumulates of the convolutions and linear layers in one forward, per image."""
    total = 0

    def conv(m, i, o):
        nonlocal total
        total += o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin(m, i, o):
        nonlocal total
        total += o.numel() * m.in_features

    hooks = [mod.register_forward_hook(conv if isinstance(mod, nn.Conv2d) else lin)
             for mod in model.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return total // x.shape[0]


def median_step(step, min_iters, max_iters, budget):
    """Median seconds of `step` after 2 warm-up calls, over at least min_iters and budget seconds."""
    step(), step()
    times, start = [], time.perf_counter()
    while len(times) < max_iters and (len(times) < min_iters or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["mnv2", "resnet20"], default="mnv2")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--variant", choices=["s1x3", "s1x2", "imagenet"], default="s1x3")
    ap.add_argument("--input", choices=["cifar", "fmnist"], default="cifar", help="32x32x3 or 28x28x1")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true", help="NHWC tensors (ddqc's layout; PyTorch's fastest)")
    ap.add_argument("--budget", type=float, default=10.0, help="seconds of timed training steps (evaluation: half)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    in_ch, size = (3, 32) if a.input == "cifar" else (1, 28)
    model = MobileNetV2(in_ch, a.width, a.variant) if a.model == "mnv2" else ResNet(in_ch)
    x, y = torch.randn(a.batch, in_ch, size, size), torch.randint(0, 10, (a.batch,))
    macs = macs_per_image(model, x[:1])
    params = sum(p.numel() for p in model.parameters())
    if a.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def train_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def eval_step():
        with torch.no_grad():
            model(x)

    model.train()
    t_train, n_train = median_step(train_step, 5, 400, a.budget)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process: this configuration
    model.eval()
    t_eval, n_eval = median_step(eval_step, 5, 400, a.budget / 2)
    flop = 2 * macs  # per image, forward; a training step is about three forwards
    print(json.dumps({
        "model": a.model, "width": a.width if a.model == "mnv2" else None,
        "variant": a.variant if a.model == "mnv2" else None, "input": a.input, "batch": a.batch,
        "threads": a.threads, "channels_last": a.channels_last, "params": params, "macs": macs,
        "train_ms_step": round(1e3 * t_train, 2), "train_img_s": round(a.batch / t_train, 1), "train_iters": n_train,
        "train_gflops": round(3 * flop * a.batch / t_train / 1e9, 2),
        "eval_ms_batch": round(1e3 * t_eval, 2), "eval_img_s": round(a.batch / t_eval, 1), "eval_iters": n_eval,
        "eval_gflops": round(flop * a.batch / t_eval / 1e9, 2),
        "rss_after_train_mb": round(rss_mb), "torch": torch.__version__, "LD_PRELOAD": os.environ.get("LD_PRELOAD"),
    }))


if __name__ == "__main__":
    main()
