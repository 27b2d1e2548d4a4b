#!/usr/bin/env python3
"""One LG-FG-A / LG-BP training step of LocalMixer in PyTorch (CPU): the baseline that
fwdgrad's TypeScript implementation (tfjs, wasm backend) is timed against.

The model and the two learning rules follow /work/shared/REFERENCE.md (sections 0-3) and
fwdgrad's own defaults (packages/localmixer DEFAULT_CONFIG): local layer norm without affine
parameters, placement "before+after" (begin_ln, middle_ln, post_linear_ln all on), inter_ln and
last_layer_ln on, kaiming init capped at 0.1, zero-initialised final classifier, Hd = C.

  LG-BP   (REFERENCE 1.2): the local losses of every block plus the final cross-entropy on
          detached features, one loss.backward(), stop-gradient (detach) between blocks.
  LG-FG-A (REFERENCE 1.6): one forward pass with dual tensors (torch.autograd.forward_ad); unit
          Gaussian noise dz enters as a tangent after each post-linear norm; per-block loss
          tangents t_k [B, P, G] from the fused replicated cross-entropy (REFERENCE 3.1, no
          replicas materialised); per unit: u * dz * 1[post > 0] -> exact VJP of the norm ->
          weight estimate pre^T . g. Heads and the final classifier get exact gradients on
          detached features. No reverse pass through the backbone.
Both end with an SGD-momentum update (lr 0.01, momentum 0.9, head_lr 1, last_layer_lr 0.1).

Usage (Debian's python3-torch; call the system python explicitly):
  /usr/bin/python3 localmixer_step.py --check                    # correctness checks, tiny config
  /usr/bin/python3 localmixer_step.py --bench M/1/16:128,M/8/16:128,M/8/16:32 --reps 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F

EPS = 1e-5  # REFERENCE 2: LN epsilon
DEFAULT_THREADS = torch.get_num_threads()  # before any set_num_threads


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    image: tuple[int, int, int]  # H, W, channels
    blocks: int
    np: int  # patches per side
    C: int  # channels
    G: int  # groups
    K: int = 10  # classes

    @property
    def P(self) -> int:
        return self.np * self.np

    @property
    def D_in(self) -> int:
        h, w, c = self.image
        return (h // self.np) * (w // self.np) * c

    @property
    def Hd(self) -> int:  # hidden width of the dense channel layer, Hd = C (REFERENCE 0)
        return self.C

    @property
    def Cg(self) -> int:  # C' = C / G
        return self.C // self.G

    @property
    def Hg(self) -> int:  # Hd / G
        return self.Hd // self.G


# Paper Table 2 with their datasets' input shapes (REFERENCE 2).
PRESETS = {
    "M/1/16": Config(image=(28, 28, 1), blocks=1, np=1, C=512, G=16),
    "M/8/16": Config(image=(32, 32, 3), blocks=4, np=8, C=512, G=16),
}


@dataclass(frozen=True)
class Site:
    index: int  # backbone layer index, REFERENCE 0 order
    block: int
    layout: str  # 'dense' | 'grouped' | 'token'


def sites_of(cfg: Config) -> list[Site]:
    out = [Site(0, 0, "dense"), Site(1, 0, "grouped")]
    for k in range(1, cfg.blocks):
        for j, layout in enumerate(("token", "dense", "grouped")):
            out.append(Site(2 + 3 * (k - 1) + j, k, layout))
    return out


def weight_shapes(cfg: Config, site: Site) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if site.layout == "token":
        return (cfg.P, cfg.P), (cfg.P,)
    if site.layout == "grouped":
        return (cfg.G, cfg.Hg, cfg.Cg), (cfg.G, cfg.Cg)
    fan_in = cfg.D_in if site.index == 0 else cfg.C
    return (fan_in, cfg.Hd), (cfg.Hd,)


def init_params(cfg: Config, seed: int, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """REFERENCE 0: W = min(2/sqrt(fan_in), 0.1) * N(0, 1), fan_in = shape[-2]; biases zero;
    local heads like the backbone; the final classifier zero."""
    gen = torch.Generator().manual_seed(seed)
    params: dict[str, torch.Tensor] = {}

    def weight(shape):
        scale = min(2.0 / math.sqrt(shape[-2]), 0.1)
        return scale * torch.randn(shape, generator=gen, dtype=dtype)

    for s in sites_of(cfg):
        ws, bs = weight_shapes(cfg, s)
        params[f"backbone.{s.index}.w"] = weight(ws)
        params[f"backbone.{s.index}.b"] = torch.zeros(bs, dtype=dtype)
    for k in range(cfg.blocks):
        params[f"head.{k}.w"] = weight((cfg.C, cfg.K))
        params[f"head.{k}.b"] = torch.zeros(cfg.K, dtype=dtype)
    params["classifier.w"] = torch.zeros(cfg.C, cfg.K, dtype=dtype)
    params["classifier.b"] = torch.zeros(cfg.K, dtype=dtype)
    return params


# ----------------------------------------------------------------------------- layers


def ln(x: torch.Tensor) -> torch.Tensor:
    """Parameter-free layer norm over the last axis (REFERENCE 2: eps 1e-5, no gamma/beta).
    Every LocalMixer norm is "local" over the last axis in the layouts used here: the channels
    of a patch, the channels of one group, and (token mixing, kept as [B, P, C]) the channels
    of one token."""
    return F.layer_norm(x, (x.shape[-1],), eps=EPS)


def linear(layout: str, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if layout == "dense":  # x[..., in] . W[in, out] + b
        return torch.matmul(x, w) + b
    if layout == "grouped":  # 'npgc,gcd->npgd' + b[G, C'] as one batched matmul over groups
        B, P, G, ci = x.shape
        y = torch.bmm(x.reshape(B * P, G, ci).transpose(0, 1), w)  # [G, B*P, co]
        return y.transpose(0, 1).reshape(B, P, G, w.shape[2]) + b
    # token mixing: REFERENCE applies W[P_in, P_out] to x[B, C, P_in]; we keep the activation as
    # [B, P, C] (channels last, so the norm over channels is a last-axis norm) and compute the
    # same numbers as W^T . x[b] for every example: y[b, p_out, c] = sum_p_in W[p_in, p_out] x[b, p_in, c].
    B, P, C = x.shape
    y = torch.matmul(w.t(), x.transpose(0, 1).reshape(P, B * C))  # [P_out, B*C]
    return y.reshape(P, B, C).transpose(0, 1) + b[:, None]


def linear_param_grads(layout: str, pre: torch.Tensor, g: torch.Tensor):
    """REFERENCE 1.6 step 4: weight/bias gradients of a linear layer from its input `pre` and the
    cotangent `g` of its output (dense: pre^T g; grouped: per group; token: sum over n, c)."""
    if layout == "dense":
        pre2 = pre.reshape(-1, pre.shape[-1])
        g2 = g.reshape(-1, g.shape[-1])
        return pre2.t() @ g2, g2.sum(0)
    if layout == "grouped":
        B, P, G, ci = pre.shape
        co = g.shape[-1]
        preG = pre.reshape(B * P, G, ci).transpose(0, 1)  # [G, M, ci]
        gG = g.reshape(B * P, G, co).transpose(0, 1)  # [G, M, co]
        return torch.bmm(preG.transpose(1, 2), gG), gG.sum(1)
    # token: gW[p_in, p_out] = sum_{n,c} pre[n, p_in, c] g[n, p_out, c]
    B, P, C = pre.shape
    preT = pre.transpose(0, 1).reshape(P, B * C)
    gT = g.transpose(0, 1).reshape(P, B * C)
    return preT @ gT.t(), g.sum((0, 2))


# ----------------------------------------------------------------------------- fused replicated CE


class FusedReplicatedCE(torch.autograd.Function):
    """REFERENCE 3.1: x [B, P, G, C'], head w [G*C', K], b [K], one-hot y [B, K].
    Value: CE_n of the pooled logits, tiled (as a broadcast view) to [B, P, G]. Replica (n, p, g)
    is differentiable only through its own patch and group, with coefficient 1/P, and through
    the head. Fused VJP for any cotangent dy [B, P, G]: S_n = sum dy[n]; dlogits = S_n r_n;
    dw = xbar^T dlogits; db = sum_n dlogits; dx[n,p,g,:] = dy[n,p,g] w_g r_n / P."""

    @staticmethod
    def forward(ctx, x, w, b, y):
        B, P, G, Cg = x.shape
        xbar = x.mean(1).reshape(B, G * Cg)
        logp = torch.log_softmax(xbar @ w + b, -1)
        loss = -(y * logp).sum(-1)
        r = logp.exp() * y.sum(-1, keepdim=True) - y  # d CE_n / d logits_n
        ctx.save_for_backward(xbar, r, w)
        ctx.shape = (B, P, G, Cg)
        return loss[:, None, None].expand(B, P, G)

    @staticmethod
    def backward(ctx, dy):
        xbar, r, w = ctx.saved_tensors
        B, P, G, Cg = ctx.shape
        dlogits = r * dy.sum((1, 2))[:, None]
        v = (r @ w.t()).reshape(B, 1, G, Cg) / P
        dx = dy[..., None] * v
        return dx, xbar.t() @ dlogits, dlogits.sum(0), None


def fused_ce_tangent(feat: torch.Tensor, dfeat: torch.Tensor, w, b, y) -> torch.Tensor:
    """REFERENCE 3.1 fused JVP with a constant head: dL[n,p,g] = sum_c dfeat[n,p,g,c] v[n,g,c] / P,
    v = w_g (softmax - y)_n. O(B*G*C'*K + B*P*G*C'); the replicas are never built."""
    B, P, G, Cg = feat.shape
    xbar = feat.mean(1).reshape(B, G * Cg)
    r = torch.softmax(xbar @ w + b, -1) * y.sum(-1, keepdim=True) - y
    v = (r @ w.t()).reshape(B, 1, G, Cg)
    return (dfeat * v).sum(-1) / P


def naive_replicated_ce(x, w, b, y):
    """REFERENCE 3.1 naive equivalent, for the check only: x <- x/P + stopgrad(mean_P(x) - x/P);
    G copies with eye(G)-masked stop-gradients; logits [B, P, G, K]; CE [B, P, G]."""
    B, P, G, Cg = x.shape
    xr = x / P + (x.mean(1, keepdim=True) - x / P).detach()  # [B, P, G, C'], value = mean_P
    eye = torch.eye(G, dtype=x.dtype)[None, None, :, :, None]  # [1,1,G(replica),G(feature),1]
    rep = xr[:, :, None] * eye + xr.detach()[:, :, None] * (1 - eye)  # [B, P, G, G, C']
    logits = rep.reshape(B, P, G, G * Cg) @ w + b
    return -(y[:, None, None, :] * torch.log_softmax(logits, -1)).sum(-1)


# ----------------------------------------------------------------------------- forward pass


class Recorder:
    """The per-site values of REFERENCE 1.6: pre (linear input), prenorm (linear output),
    post (after the ReLU), the noise; primals only."""

    def __init__(self):
        self.records: list[dict] = []


def primal(t: torch.Tensor) -> torch.Tensor:
    return fwAD.unpack_dual(t).primal


def block_forward(cfg, params, sites, h, noise_fn=None, rec: Recorder | None = None):
    """One LocalMixer block (REFERENCE 2, placement before+after). With `noise_fn`, each site's
    post-linear-norm output gets `noise_fn(site, shape)` added as a forward tangent (primal
    unchanged), and `rec` stores what the estimate needs."""

    def activate(site, pre, prenorm, residual=None):
        z = ln(prenorm)  # post_linear_ln
        dz = None
        if noise_fn is not None:
            dz = noise_fn(site, tuple(z.shape))
            zp, zt = fwAD.unpack_dual(z)  # clean primal; the noise joins the tangent
            z = fwAD.make_dual(zp, dz if zt is None else zt + dz)
        post = torch.relu(z if residual is None else z + residual)
        if rec is not None:
            rec.records.append(
                dict(site=site, pre=primal(pre), prenorm=primal(prenorm), post=primal(post), noise=dz)
            )
        return post

    def lin(site, x):
        return linear(site.layout, x, params[f"backbone.{site.index}.w"], params[f"backbone.{site.index}.b"])

    B = h.shape[0]
    if sites[0].block == 0:
        s0, s1 = sites
        pre0 = ln(h)  # begin_ln
        h0 = activate(s0, pre0, lin(s0, pre0))  # [B, P, Hd]
        pre1 = ln(h0.reshape(B, cfg.P, cfg.G, cfg.Hg))  # middle_ln, per group
        return activate(s1, pre1, lin(s1, pre1))  # [B, P, G, C']
    sTok, sDense, sGroup = sites
    x = ln(h.reshape(B, cfg.P, cfg.C))  # begin_ln, per token over C
    hTok = activate(sTok, x, lin(sTok, x))  # [B, P, C] (the [B, C, P] of REFERENCE, transposed)
    preD = ln(hTok)  # middle_ln
    hD = activate(sDense, preD, lin(sDense, preD))
    preG = ln(hD.reshape(B, cfg.P, cfg.G, cfg.Hg))  # middle_ln per group
    return activate(sGroup, preG, lin(sGroup, preG), residual=h)  # raw block input before the ReLU


def head_features(cfg, out):  # inter_ln: per group of each patch
    return ln(out)


def final_features(cfg, last):  # mean over P, then last_layer_ln
    return ln(last.reshape(last.shape[0], cfg.P, cfg.C).mean(1))


def head_and_classifier_loss(cfg, params, feats, last, y):
    """Exact objective of the heads and the final classifier on detached features
    (REFERENCE 1.1): sum_k sum_{n,p,g} replica / B + mean CE of the classifier."""
    B = y.shape[0]
    total = 0.0
    for k, f in enumerate(feats):
        total = total + FusedReplicatedCE.apply(f, params[f"head.{k}.w"], params[f"head.{k}.b"], y).sum() / B
    logits = final_features(cfg, last) @ params["classifier.w"] + params["classifier.b"]
    return total + F.cross_entropy(logits, y.argmax(-1))


# ----------------------------------------------------------------------------- learning rules


def head_names(cfg):
    names = [f"head.{k}.{p}" for k in range(cfg.blocks) for p in "wb"]
    return names + ["classifier.w", "classifier.b"]


def lg_bp_grads(cfg, params, x, y, naive_loss: bool = False) -> dict[str, torch.Tensor]:
    """LG-BP (REFERENCE 1.2): local losses + final CE on detached features, stop-gradient after
    every block, one backward pass."""
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    sites = sites_of(cfg)
    B = x.shape[0]
    h = x
    total = 0.0
    for k in range(cfg.blocks):
        out = block_forward(cfg, leaves, [s for s in sites if s.block == k], h)
        feat = head_features(cfg, out)
        w, b = leaves[f"head.{k}.w"], leaves[f"head.{k}.b"]
        rep = naive_replicated_ce(feat, w, b, y) if naive_loss else FusedReplicatedCE.apply(feat, w, b, y)
        total = total + rep.sum() / B
        h = out.detach()  # stop-gradient between blocks (and before the readout)
    logits = final_features(cfg, h) @ leaves["classifier.w"] + leaves["classifier.b"]
    total = total + F.cross_entropy(logits, y.argmax(-1))
    names = list(leaves)
    grads = torch.autograd.grad(total, [leaves[n] for n in names], allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(leaves[n])) for n, g in zip(names, grads)}


def gaussian_noise(gen: torch.Generator, dtype):
    return lambda site, shape: torch.randn(shape, generator=gen, dtype=dtype)


def lg_fg_a_grads(cfg, params, x, y, noise_fn, norm_gradient: bool = True) -> dict[str, torch.Tensor]:
    """LG-FG-A (REFERENCE 1.6): one forward pass carrying the noise tangents, no reverse pass
    through the backbone; exact head/classifier gradients on detached features."""
    sites = sites_of(cfg)
    B = x.shape[0]
    grads: dict[str, torch.Tensor] = {}
    feats, h = [], x
    with fwAD.dual_level():
        rec = Recorder()
        tangents = []
        for k in range(cfg.blocks):
            out = block_forward(cfg, params, [s for s in sites if s.block == k], h, noise_fn, rec)
            feat = head_features(cfg, out)
            fp, ft = fwAD.unpack_dual(feat)
            # t_k [B, P, G]: tangent of block k's replicated losses, each / B (REFERENCE 1.1)
            tangents.append(fused_ce_tangent(fp, ft, params[f"head.{k}.w"], params[f"head.{k}.b"], y) / B)
            feats.append(fp)
            h = primal(out)  # stop-gradient: the next block sees no tangent (REFERENCE 1.1)
        records = rec.records
    for r in records:
        site, t, dz = r["site"], tangents[r["site"].block], r["noise"]
        # step 1: the loss tangent reaching each unit
        if site.layout == "token":  # units [B, P, C]: sum_g t[n, p, g], shared by all channels
            gz = t.sum(-1)[:, :, None] * dz
        elif site.layout == "grouped":  # units [B, P, G, C']
            gz = t[..., None] * dz
        else:  # dense units [B, P, Hd]: group g's Hd/G consecutive units share t[n, p, g]
            Bn, P, Hd = dz.shape
            gz = (t[..., None] * dz.reshape(Bn, P, cfg.G, Hd // cfg.G)).reshape(Bn, P, Hd)
        gz = gz * (r["post"] > 0)  # step 2: ReLU mask (the post-residual ReLU for grouped k>0)
        if norm_gradient:  # step 3: exact VJP of the parameter-free norm at prenorm
            with torch.enable_grad():
                z = r["prenorm"].detach().requires_grad_(True)
                (gpre,) = torch.autograd.grad(ln(z), z, gz)
        else:
            gpre = gz
        dw, db = linear_param_grads(site.layout, r["pre"], gpre)  # step 4
        grads[f"backbone.{site.index}.w"] = dw
        grads[f"backbone.{site.index}.b"] = db
    # heads and classifier: exact gradients on the stored, detached features (REFERENCE 1.1)
    leaves = {n: params[n].detach().requires_grad_(True) for n in head_names(cfg)}
    with torch.enable_grad():
        loss = head_and_classifier_loss(cfg, leaves, feats, h, y)
        hg = torch.autograd.grad(loss, list(leaves.values()))
    grads.update(zip(leaves.keys(), hg))
    return grads


class SGD:
    """REFERENCE 4: t = scale*g + momentum*t_prev; W <- W - lr*t; scale = 1 (backbone),
    head_lr = 1 (local heads), last_layer_lr = 0.1 (final classifier); no weight decay."""

    def __init__(self, lr=0.01, momentum=0.9, head_lr=1.0, last_layer_lr=0.1):
        self.lr, self.momentum, self.head_lr, self.last_layer_lr = lr, momentum, head_lr, last_layer_lr
        self.traces: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def apply(self, params, grads):
        for name, p in params.items():
            scale = self.last_layer_lr if name.startswith("classifier") else self.head_lr if name.startswith("head") else 1.0
            g = grads[name] * scale if scale != 1.0 else grads[name]
            t = self.traces.get(name)
            t = g.clone() if t is None else t.mul_(self.momentum).add_(g)
            self.traces[name] = t
            p.sub_(t, alpha=self.lr)


def random_batch(cfg, B, seed, dtype=torch.float32):
    """Random patches [B, P, D_in] and one-hot labels, like fwdgrad's step benchmarks."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, cfg.P, cfg.D_in, generator=gen, dtype=dtype)
    labels = torch.randint(0, cfg.K, (B,), generator=gen)
    return x, F.one_hot(labels, cfg.K).to(dtype)


# ----------------------------------------------------------------------------- checks


TINY = Config(image=(4, 4, 2), blocks=2, np=2, C=8, G=2, K=3)


def rel_err(a, b):
    return float((a - b).norm() / max(b.norm(), 1e-30))


def check(samples: int) -> bool:
    """Correctness on a tiny config (2 blocks so token mixing and the residual are covered),
    in float64: (1) fused replicated CE == naive replicas for LG-BP; (2) summing the LG-FG-A
    estimate over every unit basis direction of the noise reproduces the LG-BP gradient exactly
    (E[dz dz^T] = I replaced by sum_i e_i e_i^T); (3) the mean of `samples` Gaussian LG-FG-A
    estimates approaches the LG-BP gradient within its Monte-Carlo error."""
    torch.manual_seed(0)
    dt = torch.float64
    cfg, B = TINY, 3
    params = init_params(cfg, 1, dt)
    gen = torch.Generator().manual_seed(2)
    params["classifier.w"] = 0.3 * torch.randn(cfg.C, cfg.K, generator=gen, dtype=dt)  # non-zero readout
    x, y = random_batch(cfg, B, 3, dt)
    ok = True
    exact = lg_bp_grads(cfg, params, x, y)
    naive = lg_bp_grads(cfg, params, x, y, naive_loss=True)
    # the token-mixing biases are dead parameters (REFERENCE 2 note): exact gradient 0 up to rounding
    live = [n for n in exact if float(exact[n].norm()) > 1e-10]
    dead = [n for n in exact if n not in live]
    worst = max(rel_err(naive[n], exact[n]) for n in live)
    print(f"[check] fused vs naive replicated CE (LG-BP grads): max rel err {worst:.2e}")
    ok &= worst < 1e-10

    # (2) basis directions: enumerate every (site, unit) of every example
    shapes = {}

    def record_shapes(site, shape):
        shapes[site.index] = shape
        return torch.zeros(shape, dtype=dt)

    with torch.no_grad():
        lg_fg_a_grads(cfg, params, x, y, record_shapes)
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for idx, shape in shapes.items():
        for flat in range(math.prod(shape)):

            def basis(site, shp, idx=idx, flat=flat):
                z = torch.zeros(shp, dtype=dt)
                if site.index == idx:
                    z.view(-1)[flat] = 1.0
                return z

            with torch.no_grad():
                g = lg_fg_a_grads(cfg, params, x, y, basis)
            for n in total:
                if n.startswith("backbone"):
                    total[n] += g[n]
            count += 1
    worst = max(rel_err(total[n], exact[n]) for n in live if n.startswith("backbone"))
    dead_max = max(float(total[n].abs().max()) for n in dead)
    print(f"[check] LG-FG-A summed over {count} basis directions vs LG-BP: max rel err {worst:.2e}; "
          f"dead token-mixing biases {dead}: max |estimate| {dead_max:.1e}")
    ok &= worst < 1e-9 and dead_max < 1e-12
    heads = max(rel_err(g[n], exact[n]) for n in head_names(cfg) if n in live)
    print(f"[check] heads/classifier (exact in both rules): max rel err {heads:.2e}")
    ok &= heads < 1e-10

    # (3) Monte-Carlo mean of Gaussian estimates
    gen = torch.Generator().manual_seed(4)
    acc = {n: torch.zeros_like(p) for n, p in params.items() if n.startswith("backbone")}
    sq = {n: torch.zeros_like(p) for n in acc for p in [params[n]]}
    with torch.no_grad():
        for _ in range(samples):
            g = lg_fg_a_grads(cfg, params, x, y, gaussian_noise(gen, dt))
            for n in acc:
                acc[n] += g[n]
                sq[n] += g[n] ** 2
    print(f"[check] mean of {samples} Gaussian LG-FG-A estimates vs LG-BP "
          "(z = max |mean - exact| / standard error; 0.01% two-sided bound over all entries ~ 4.5-5):")
    for n in acc:
        if n not in live:
            continue
        mean = acc[n] / samples
        var = (sq[n] / samples - mean**2).clamp_min(0) * samples / (samples - 1)
        se = (var / samples).sqrt().clamp_min(1e-300)
        z = float(((mean - exact[n]).abs() / se).max())
        cos = float(F.cosine_similarity(mean.flatten(), exact[n].flatten(), 0))
        print(f"  {n:16s} rel err {rel_err(mean, exact[n]):.3f}  cosine {cos:.4f}  max z {z:.2f}")
        ok &= z < 6.0 and cos > 0.9
    print("[check]", "PASS" if ok else "FAIL")
    return ok


def check_against_fwdgrad(path: str) -> bool:
    """Same parameters and batch as fwdgrad (exported by `node fwdgrad_step.mjs export-tiny`):
    the LG-BP gradients, and the exact head/classifier gradients of LG-FG-A, must agree up to
    fwdgrad's float32 rounding. (The backbone part of LG-FG-A depends on each framework's own
    noise stream, so it is checked above by the basis-direction identity instead.)"""
    with open(path) as f:
        ref = json.load(f)
    c = ref["config"]
    cfg = Config(image=tuple(c["imageShape"]), blocks=c["blocks"], np=c["patchesPerSide"], C=c["channels"],
                 G=c["groups"], K=c["numClasses"])
    assert c["hidden"] == c["channels"] and c["norm"] == "local-layer" and c["interLn"] and c["lastLayerLn"]
    assert c["placement"] == {"begin": True, "middle": True, "postLinear": True}, c["placement"]
    dt = torch.float64
    as_t = lambda d: torch.tensor(d["data"], dtype=dt).reshape(d["shape"])  # noqa: E731
    params = {n: as_t(d) for n, d in ref["params"].items()}
    x, y = as_t(ref["x"]), as_t(ref["labels"])
    ours = lg_bp_grads(cfg, params, x, y)
    ok = True
    for algo, names in (("lg-bp", list(ours)), ("lg-fg-a", head_names(cfg))):
        theirs = {n: as_t(d) for n, d in ref["grads"][algo].items()}
        worst, scale = 0.0, max(float(t.abs().max()) for t in ours.values())
        for n in names:
            # relative to the largest gradient entry: the dead token bias is ~1e-8 in float32
            worst = max(worst, float((theirs[n] - ours[n]).abs().max()) / scale)
        print(f"[check] fwdgrad {algo} gradients ({len(names)} tensors) vs PyTorch LG-BP: "
              f"max |diff| / max |grad| = {worst:.1e}")
        ok &= worst < 1e-5
    return ok


# ----------------------------------------------------------------------------- timing


def _openblas():
    try:
        import ctypes

        lib = ctypes.CDLL("libopenblas.so.0")  # the library torch's libblas.so.3 resolves to here
        lib.openblas_get_num_threads.restype = ctypes.c_int
        return lib
    except OSError:
        return None


DEFAULT_BLAS_THREADS = _openblas().openblas_get_num_threads() if _openblas() is not None else None


def set_threads(n: int) -> int | None:
    """torch.set_num_threads sets the OpenMP pool; Debian's pthread OpenBLAS keeps its own pool
    (one thread per core by default), so it is set too: "1 thread" then really means one core.
    Returns the OpenBLAS thread count (None if OpenBLAS is not found)."""
    torch.set_num_threads(n)
    lib = _openblas()
    if lib is None:
        return None
    lib.openblas_set_num_threads(n)
    return lib.openblas_get_num_threads()


def uptime_load():
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return None


def time_case(code, B, algo, reps, warmup, threads):
    blas_threads = set_threads(threads)
    cfg = PRESETS[code]
    params = init_params(cfg, 0)
    opt = SGD()
    x, y = random_batch(cfg, B, 0)
    step_ms, total_ms = [], []
    load_before = uptime_load()
    for i in range(warmup + reps):
        t0 = time.perf_counter()
        if algo == "lg-bp":
            grads = lg_bp_grads(cfg, params, x, y)
        else:
            gen = torch.Generator().manual_seed(i)
            with torch.no_grad():
                grads = lg_fg_a_grads(cfg, params, x, y, gaussian_noise(gen, x.dtype))
        t1 = time.perf_counter()
        opt.apply(params, grads)
        t2 = time.perf_counter()
        if i >= warmup:
            step_ms.append((t1 - t0) * 1e3)
            total_ms.append((t2 - t0) * 1e3)
    med = statistics.median(total_ms)
    return dict(
        framework="pytorch", code=code, batch=B, algo=algo, threads=threads, openblas_threads=blas_threads,
        omp_wait_policy=omp_policy(), ms_median=med, ms_grads_median=statistics.median(step_ms), ms_all=total_ms,
        examples_per_s=B / med * 1e3, load_before=load_before, load_after=uptime_load(),
    )


def time_matmul(threads, reps=10):
    blas_threads = set_threads(threads)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4096, 512, generator=gen)
    b = torch.randn(512, 512, generator=gen)
    for _ in range(3):
        a @ b
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    return dict(framework="pytorch", threads=threads, openblas_threads=blas_threads, omp_wait_policy=omp_policy(), shape="4096x512x512", ms_median=med * 1e3,
                gflops=2 * 4096 * 512 * 512 / med / 1e9)


def profile_case(code, B, algo, threads):
    """Self CPU time per aten op over one step (after a warm-up step), torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    blas_threads = set_threads(threads)
    cfg = PRESETS[code]
    params = init_params(cfg, 0)
    x, y = random_batch(cfg, B, 0)

    def run(i):
        if algo == "lg-bp":
            return lg_bp_grads(cfg, params, x, y)
        with torch.no_grad():
            return lg_fg_a_grads(cfg, params, x, y, gaussian_noise(torch.Generator().manual_seed(i), x.dtype))

    run(0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        run(1)
        total = (time.perf_counter() - t0) * 1e3
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    kernels = [dict(name=e.key, calls=e.count, ms=e.self_cpu_time_total / 1e3) for e in ops if e.self_cpu_time_total > 0]
    return dict(framework="pytorch", code=code, batch=B, algo=algo, threads=threads, openblas_threads=blas_threads,
                omp_wait_policy=omp_policy(), total_ms=total, kernels=kernels)


def omp_policy():
    return os.environ.get("OMP_WAIT_POLICY", "default")


def machine_info():
    info = dict(python=platform.python_version(), torch=torch.__version__,
                torch_threads_default=DEFAULT_THREADS)
    lib = _openblas()
    if lib is not None:
        import ctypes

        lib.openblas_get_config.restype = ctypes.c_char_p
        lib.openblas_get_corename.restype = ctypes.c_char_p
        info["openblas_config"] = lib.openblas_get_config().decode()
        info["openblas_core"] = lib.openblas_get_corename().decode()
        info["openblas_threads_default"] = DEFAULT_BLAS_THREADS
    cfg = torch.__config__.show()
    info["blas_info"] = next((p.split("=")[1] for p in cfg.replace(",", "\n").split() if p.startswith("BLAS_INFO=")), None)
    info["cpu_capability"] = next((l.split(":")[1].strip() for l in cfg.splitlines() if "CPU capability" in l), None)
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="run the correctness checks on a tiny config")
    ap.add_argument("--ts-ref", help="JSON from `node fwdgrad_step.mjs export-tiny FILE`: compare with fwdgrad")
    ap.add_argument("--samples", type=int, default=2000, help="Gaussian samples for the Monte-Carlo check")
    ap.add_argument("--bench", default="", help="comma list of CODE:BATCH, e.g. M/1/16:128,M/8/16:32")
    ap.add_argument("--algos", default="lg-fg-a,lg-bp")
    ap.add_argument("--reps", type=int, default=5, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", default="2", help="comma list of torch thread counts")
    ap.add_argument("--matmul", action="store_true", help="time a 4096x512x512 float32 matmul")
    ap.add_argument("--profile", help="CODE:BATCH: self time per aten op over one step of each algo")
    ap.add_argument("--json", help="append one JSON object per result to this file")
    args = ap.parse_args(argv)
    ok = True
    results = []
    if args.check:
        set_threads(1)  # tiny tensors: threads only add overhead
        ok = check(args.samples)
    if args.ts_ref:
        set_threads(1)
        ok = check_against_fwdgrad(args.ts_ref) and ok
    threads = [int(t) for t in args.threads.split(",") if t]
    if args.matmul:
        for th in threads:
            r = time_matmul(th)
            print(f"pytorch matmul 4096x512x512 threads={th} OMP_WAIT_POLICY={omp_policy()}: {r['ms_median']:.2f} ms, {r['gflops']:.1f} GFLOP/s", flush=True)
            results.append(dict(kind="matmul", **r))
    for item in [s for s in args.bench.split(",") if s]:
        code, B = item.rsplit(":", 1)
        for th in threads:
            for algo in args.algos.split(","):
                r = time_case(code, int(B), algo, args.reps, args.warmup, th)
                print(f"pytorch {code} B={B} {algo} threads={th} OMP_WAIT_POLICY={omp_policy()}: {r['ms_median']:.1f} ms/step "
                      f"(grads {r['ms_grads_median']:.1f}), {r['examples_per_s']:.0f} ex/s, "
                      f"load {r['load_before']}", flush=True)
                results.append(dict(kind="step", **r))
    if args.profile:
        code, B = args.profile.rsplit(":", 1)
        for algo in args.algos.split(","):
            r = profile_case(code, int(B), algo, threads[0])
            print(f"pytorch profile {code} B={B} {algo} threads={threads[0]}: {r['total_ms']:.0f} ms "
                  f"(profiled; op self times sum to {sum(k['ms'] for k in r['kernels']):.0f} ms)")
            for k in r["kernels"][:12]:
                print(f"  {k['ms']:8.1f} {k['calls']:5d} {k['name']}")
            results.append(dict(kind="profile", **r))
    if args.json and results:
        with open(args.json, "a") as f:
            f.write(json.dumps(dict(kind="machine", framework="pytorch", **machine_info())) + "\n")
            for r in results:
                f.write(json.dumps(r) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
