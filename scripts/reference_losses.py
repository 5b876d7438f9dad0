#!/usr/bin/env python3
"""Plain-PyTorch reference values of kd-tui's distillation losses, from the published formulas.

Reads JSON on stdin: {"student": [[...]], "teacher": [[...]], "labels": [...], "settings": {...}}
and prints JSON: {"soft_kl": x, "hard": x, "tckd": x, "nckd": x, "inter": x, "intra": x, ...},
and the same on standardised logits ("soft_kl_std", ...). Given "features": {"student": [...],
"student_shape": [...], "teacher": [...], "teacher_shape": [...]} (flat values), it prints the
losses on features instead: "at" (null unless both are maps), "sp", "rkd_distance", "rkd_angle",
"pkt"; {"contrast": {"scores", "shape", "n_data"}} gives CRD's NCE loss, "crd_nce". tests/loss_reference.rs feeds it random values and checks kd-tui agrees to 1e-5. The
formulas follow the authors' code: mdistiller (DKD, AT, SP, RKD), the DIST repository (DIST),
Hinton et al. (KD), Passalis & Tefas's and RepDistiller's (PKT), Sun et al.'s (logit
standardisation).
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


def standardize(z):
    # Sun et al. 2024: (logit - mean) / (1e-7 + std), torch.std (Bessel-corrected).
    return (z - z.mean(-1, keepdim=True)) / (1e-7 + z.std(-1, keepdim=True))


def at(fs, ft, p=2.0):
    # mdistiller's at_loss: the larger map pooled to the smaller's size, then
    # (normalize(mean_c |f|^p) difference)^2, mean over batch and positions.
    if fs.shape[2:] != ft.shape[2:]:
        if fs.shape[2] * fs.shape[3] > ft.shape[2] * ft.shape[3]:
            fs = F.adaptive_avg_pool2d(fs, ft.shape[2:])
        else:
            ft = F.adaptive_avg_pool2d(ft, fs.shape[2:])
    amap = lambda f: F.normalize(f.abs().pow(p).mean(1).view(f.size(0), -1))
    return (amap(fs) - amap(ft)).pow(2).mean()


def sp(fs, ft):
    # mdistiller's similarity_loss.
    b = fs.shape[0]
    gram = lambda f: F.normalize(torch.mm(f.view(b, -1), f.view(b, -1).t()))
    diff = gram(ft) - gram(fs)
    return (diff * diff).view(-1, 1).sum(0)[0] / (b * b)


def _pdist(e, eps=1e-12):
    e_square = e.pow(2).sum(dim=1)
    prod = e @ e.t()
    res = (e_square.unsqueeze(1) + e_square.unsqueeze(0) - 2 * prod).clamp(min=eps).sqrt()
    res = res.clone()
    res[range(len(e)), range(len(e))] = 0
    return res


def rkd(fs, ft):
    # mdistiller's rkd_loss, the two terms unweighted.
    stu, tea = fs.view(fs.shape[0], -1), ft.view(ft.shape[0], -1)
    t_d = _pdist(tea)
    t_d = t_d / t_d[t_d > 0].mean()
    d = _pdist(stu)
    d = d / d[d > 0].mean()
    loss_d = F.smooth_l1_loss(d, t_d)
    angle = lambda e: (lambda n: torch.bmm(n, n.transpose(1, 2)).view(-1))(
        F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    )
    loss_a = F.smooth_l1_loss(angle(stu), angle(tea))
    return loss_d, loss_a


def pkt(fs, ft, eps=1e-7):
    # Passalis & Tefas's cosine_similarity_loss (as in RepDistiller and mdistiller).
    def prob(f):
        f = f.view(f.shape[0], -1)
        f = f / (torch.sqrt(torch.sum(f**2, dim=1, keepdim=True)) + eps)
        f[f != f] = 0
        k = (torch.mm(f, f.transpose(0, 1)) + 1.0) / 2.0
        return k / torch.sum(k, dim=1, keepdim=True)

    ps, pt = prob(fs), prob(ft)
    return torch.mean(pt * torch.log((pt + eps) / (ps + eps)))


def contrast_loss(x, n_data, eps=1e-7):
    # CRD's ContrastLoss (Tian et al.'s code, as in mdistiller): NCE of the scores x
    # ([b, 1 + k], the positive first) against uniform noise over n_data examples.
    bsz, m = x.shape[0], x.size(1) - 1
    pn = 1 / float(n_data)
    p_pos = x.select(1, 0)
    log_d1 = torch.div(p_pos, p_pos.add(m * pn + eps)).log_()
    p_neg = x.narrow(1, 1, m)
    log_d0 = torch.div(p_neg.clone().fill_(m * pn), p_neg.add(m * pn + eps)).log_()
    return -(log_d1.sum(0) + log_d0.view(-1, 1).sum(0)) / bsz


def features(data):
    shaped = lambda side: torch.tensor(data[side], dtype=torch.float64).view(
        data[side + "_shape"]
    )
    fs, ft = shaped("student"), shaped("teacher")
    maps = fs.dim() == 4 and ft.dim() == 4
    loss_d, loss_a = rkd(fs, ft)
    out = {"sp": sp(fs, ft), "rkd_distance": loss_d, "rkd_angle": loss_a, "pkt": pkt(fs, ft)}
    out = {k: float(v) for k, v in out.items()}
    out["at"] = float(at(fs, ft)) if maps else None
    return out


def main():
    data = json.load(sys.stdin)
    if "features" in data:
        json.dump(features(data["features"]), sys.stdout)
        return
    if "contrast" in data:
        c = data["contrast"]
        x = torch.tensor(c["scores"], dtype=torch.float64).view(c["shape"])
        json.dump({"crd_nce": float(contrast_loss(x, c["n_data"]))}, sys.stdout)
        return
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
    zs, zt = standardize(s), standardize(t)
    tckd, nckd = dkd(zs, zt, y, cfg["temperature"])
    inter, intra = dist(zs, zt, cfg["tau"])
    out.update(
        soft_kl_std=soft_kl(zs, zt, cfg["temperature"]),
        tckd_std=tckd,
        nckd_std=nckd,
        inter_std=inter,
        intra_std=intra,
    )
    json.dump({k: float(v) for k, v in out.items()}, sys.stdout)


if __name__ == "__main__":
    main()
