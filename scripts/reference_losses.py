#!/usr/bin/env python3
"""Plain-PyTorch reference values of kd-tui's distillation losses, from the published formulas.

Reads JSON on stdin: {"student": [[...]], "teacher": [[...]], "labels": [...], "settings": {...}}
and prints JSON: {"soft_kl": x, "hard": x, "tckd": x, "nckd": x, "inter": x, "intra": x, ...}.
tests/loss_reference.rs feeds it random logits and checks kd-tui agrees to 1e-5. The formulas
follow the authors' code: mdistiller (DKD), the DIST repository (DIST), Hinton et al. (KD).
"""
import json
import sys

import torch
import torch.nn.functional as F


def soft_kl(s, t, T):
    # Hinton: T^2 * KL(softmax(t/T) || softmax(s/T)), summed over classes, batch mean.
    return F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T


def dkd(s, t, y, T):
    # mdistiller's dkd_loss with alpha = beta = 1, returned part by part.
    gt = torch.zeros_like(s).scatter_(1, y.unsqueeze(1), 1).bool()
    other = ~gt
    ps, pt = F.softmax(s / T, 1), F.softmax(t / T, 1)
    cat = lambda p: torch.stack([(p * gt).sum(1), (p * other).sum(1)], 1)
    tckd = F.kl_div(torch.log(cat(ps)), cat(pt), reduction="sum") * T**2 / s.shape[0]
    pt2 = F.softmax(t / T - 1000.0 * gt, 1)
    ls2 = F.log_softmax(s / T - 1000.0 * gt, 1)
    nckd = F.kl_div(ls2, pt2, reduction="sum") * T**2 / s.shape[0]
    return tckd, nckd


def pearson(a, b, eps=1e-8):
    a = a - a.mean(1).unsqueeze(1)
    b = b - b.mean(1).unsqueeze(1)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist(s, t, tau):
    # DIST: inter- and intra-class relation losses, each times tau^2.
    ys, yt = (s / tau).softmax(1), (t / tau).softmax(1)
    inter = 1 - pearson(ys, yt).mean()
    intra = 1 - pearson(ys.transpose(0, 1), yt.transpose(0, 1)).mean()
    return tau**2 * inter, tau**2 * intra


def main():
    data = json.load(sys.stdin)
    s = torch.tensor(data["student"], dtype=torch.float64)
    t = torch.tensor(data["teacher"], dtype=torch.float64)
    y = torch.tensor(data["labels"], dtype=torch.int64)
    cfg = data["settings"]
    tckd, nckd = dkd(s, t, y, cfg["temperature"])
    inter, intra = dist(s, t, cfg["tau"])
    out = {
        "ce": F.cross_entropy(s, y),
        "hard": F.cross_entropy(s, t.argmax(1)),
        "soft_kl": soft_kl(s, t, cfg["temperature"]),
        "tckd": tckd,
        "nckd": nckd,
        "inter": inter,
        "intra": intra,
    }
    json.dump({k: float(v) for k, v in out.items()}, sys.stdout)


if __name__ == "__main__":
    main()
