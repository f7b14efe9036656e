"""Layers for proxy models, batched over seeds, with hand-written backward passes.

Every activation carries a leading seed dimension ``S``: ``x[S, M, D]`` is ``M`` rows for each
of ``S`` independent models whose weights are ``w[S, D_in, D_out]``, so one ``bmm`` trains all
seeds at once and no seed sees another's data or weights. The backward passes are written out
(no autograd tape): a proxy model's step is then a few dozen tensor ops, which is what makes
an evaluation take a fraction of a second. ``tests/search/test_layers.py`` checks each task's
gradients along a training trajectory, at scales 1, 10 and 100, against autograd on the same
forward ops (``autograd_loss_and_grad``) and against the exact float64 gradient.

A forward returns ``(output, cache)``; the matching backward takes ``(d_output, cache)`` and
returns ``d_input`` (``None`` where not needed) and the parameter gradients.

What the hand-written passes buy: autograd's CPU time per training step (gradient, then the
AdamW step) over theirs, on the rows of the lr grid (15 at scale 1, 25 above), best of 7 to 9
interleaved repeats, the range over three runs (``python benchmarks/evaluation.py
--backward``; torch 2.13, one thread, a busy 2-core machine)::

    task              scale 1       10            100
    quadratic         2.25-2.35x    1.25-1.29x    1.05-1.10x
    teacher_student   1.51-1.59x    1.04-1.09x    0.99-1.01x
    digits_mlp        1.32-1.42x    1.04-1.15x    0.99-1.04x
    char_lm           1.18-1.38x    1.04-1.12x    1.01-1.07x
    digits_vit        1.20-1.31x    1.04-1.10x    1.01-1.04x
    noise (A/A)       2-7%          2-9%          2-3%

At the proxy scale, where a search spends nearly all its evaluations, every task's pass is
faster by far more than the noise, so all are kept; at 100 the big matmuls, the same in both,
take the time and the two are level (never is autograd faster). The public fallback kernels
(below) cost 0.89-1.03x aten's, within the noise.
"""

from __future__ import annotations

import math

import torch

from .flat import Param

RMS_EPS = 1e-6


# --- elementwise backward kernels: aten's private ones where they work -------------------------
# aten's backward kernels are what autograd itself calls (so the MLP tasks' gradients are
# autograd's bit for bit), but they are private: ``_softmax_backward_data`` took the input
# tensor as its last argument before torch 1.11 and its dtype since. Each is probed once on a
# small input with the signature called here; one that is missing, refuses the call or
# disagrees with the public formula is replaced by the formula (the same math in public ops:
# within a few float32 ulps, relu's exactly but for the sign of a zero). ``kernels()`` says
# which are in use.

_aten = torch.ops.aten


def _threshold_backward(dy, y):
    return _aten.threshold_backward(dy, y, 0.0)


def _tanh_backward(dy, y):
    return _aten.tanh_backward(dy, y)


def _softmax_backward_data(dp, p):
    return _aten._softmax_backward_data(dp, p, -1, p.dtype)


def _relu_backward_public(dy, y):
    return dy * torch.sign(y)  # y = relu(x) >= 0: its sign is the mask (a bool mask is 10x dearer)


def _tanh_backward_public(dy, y):
    return dy * (1 - y * y)


def _softmax_backward_public(dp, p):
    return p * (dp - (dp * p).sum(-1, keepdim=True))


PUBLIC_KERNELS = {"relu": _relu_backward_public, "tanh": _tanh_backward_public, "softmax": _softmax_backward_public}
"""The public formulas, by the name of the forward op."""

_PRIVATE_KERNELS = {"relu": _threshold_backward, "tanh": _tanh_backward, "softmax": _softmax_backward_data}
_FORWARDS = {"relu": torch.relu, "tanh": torch.tanh, "softmax": lambda s: torch.softmax(s, -1)}


def _probe_input() -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed ``[2, 3, 4]`` gradient and input with zeros and both signs (no RNG drawn)."""
    x = torch.linspace(-1.5, 1.5, 24).view(2, 3, 4)
    x[0, 0, 0] = 0.0
    return torch.cos(torch.arange(24.0)).view(2, 3, 4), x


def choose(private, public, *probe: torch.Tensor):
    """``private`` if it runs on ``probe`` and agrees with ``public`` there, else ``public``."""
    try:
        if torch.allclose(private(*probe), public(*probe), rtol=1e-5, atol=1e-6):
            return private
    except Exception:  # noqa: BLE001 - whatever a private op does wrong, the formula stands in
        pass
    return public


def _choose_kernels() -> dict:
    dy, x = _probe_input()
    return {k: choose(_PRIVATE_KERNELS[k], PUBLIC_KERNELS[k], dy, _FORWARDS[k](x)) for k in PUBLIC_KERNELS}


KERNELS = _choose_kernels()
"""The backward kernel in use for ``relu``, ``tanh`` and ``softmax``: aten's, or the public formula."""


def kernels() -> dict[str, str]:
    """Which backward kernels this torch runs: ``{"relu": "aten" or "public", ...}``."""
    return {k: "aten" if f is _PRIVATE_KERNELS[k] else "public" for k, f in KERNELS.items()}


# --- dense ------------------------------------------------------------------------------------


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``y = x @ w + b`` per seed: ``x[S, M, I]``, ``w[S, I, O]``, ``b[S, O]``."""
    if b is None:
        return torch.bmm(x, w)
    return torch.baddbmm(b.unsqueeze(1), x, w)


def linear_backward(dy, x, w, *, bias: bool = True, need_dx: bool = True):
    """Gradients of ``linear``: ``(dx, dw, db)``; ``dw = x^T dy``, ``db = sum_rows dy``, ``dx = dy w^T``."""
    dw = torch.bmm(x.transpose(1, 2), dy)
    db = dy.sum(1) if bias else None
    dx = torch.bmm(dy, w.transpose(1, 2)) if need_dx else None
    return dx, dw, db


def relu_backward(dy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``dy * (y > 0)`` where ``y = relu(x)``."""
    return KERNELS["relu"](dy, y)


def tanh_backward(dy: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``dy * (1 - y^2)`` where ``y = tanh(x)``."""
    return KERNELS["tanh"](dy, y)


def softmax_backward(dp: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``p * (dp - sum(dp * p))`` over the last dimension, where ``p = softmax(s)``."""
    return KERNELS["softmax"](dp, p)


ACTIVATIONS = {"relu": (torch.relu, relu_backward), "tanh": (torch.tanh, tanh_backward)}
"""Hidden activations of ``mlp``: the function and its backward (from its output)."""


def mlp_params(sizes) -> list[Param]:
    """``Param``s of an MLP with layer widths ``sizes``: ``w{i}[fan_in, fan_out] ~ N(0, 1/fan_in)``, ``b{i} = 0``."""
    params = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        params += [Param(f"w{i}", (fan_in, fan_out), 1 / math.sqrt(fan_in)), Param(f"b{i}", (fan_out,))]
    return params


def mlp(x: torch.Tensor, p: dict, n_layers: int, activation: str) -> list[torch.Tensor]:
    """``h_0 = x``, ``h_i = act(h_{i-1} W_i + b_i)``, the last layer linear; every ``h_i`` (the
    last is the output; the rest are ``mlp_backward``'s cache)."""
    act = ACTIVATIONS[activation][0]
    acts = [x]
    for i in range(n_layers):
        z = linear(acts[-1], p[f"w{i}"], p[f"b{i}"])
        acts.append(act(z) if i < n_layers - 1 else z)
    return acts


def mlp_backward(dy: torch.Tensor, acts: list[torch.Tensor], p: dict, activation: str) -> dict:
    """Gradients of ``mlp`` for every ``w{i}`` and ``b{i}`` from ``dy``, the output's."""
    act_backward = ACTIVATIONS[activation][1]
    n_layers = len(acts) - 1
    grads = {}
    d = dy
    for i in reversed(range(n_layers)):
        if i < n_layers - 1:
            d = act_backward(d, acts[i + 1])
        d, grads[f"w{i}"], grads[f"b{i}"] = linear_backward(d, acts[i], p[f"w{i}"], need_dx=i > 0)
    return grads


# --- normalisation ------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor):
    """``y = x / sqrt(mean(x^2) + eps)`` over the last dimension (no gain: scale-free)."""
    r = torch.rsqrt(x.square().mean(-1, keepdim=True) + RMS_EPS)
    y = x * r
    return y, (y, r)


def rms_norm_backward(dy: torch.Tensor, cache) -> torch.Tensor:
    """``dx = r * (dy - y * mean(dy * y))``."""
    y, r = cache
    return (dy - y * (dy * y).mean(-1, keepdim=True)) * r


# --- losses -------------------------------------------------------------------------------------


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor):
    """Per-seed mean softmax cross-entropy: ``loss[s] = mean_m -log softmax(logits[s, m])[labels[s, m]]``.

    ``logits[S, M, C]``, integer ``labels[S, M]``. Returns ``(loss[S], cache)``.
    """
    if logits.shape[-1] >= 16:
        logp = torch.log_softmax(logits, -1)
    else:  # torch's log_softmax kernel is slow for a short last dimension; this is 3x faster
        logp = logits - torch.logsumexp(logits, -1, keepdim=True)
    index = labels.unsqueeze(-1)
    loss = logp.gather(-1, index).mean((1, 2)).neg()
    return loss, (logp, index)


def cross_entropy_backward(cache) -> torch.Tensor:
    """``d loss[s] / d logits[s] = (softmax - onehot(labels)) / M`` (each seed's own loss)."""
    logp, index = cache
    d = logp.exp()
    d.scatter_add_(-1, index, _MINUS_ONE.expand(index.shape))
    return d.mul_(1.0 / index.shape[1])


_MINUS_ONE = torch.tensor(-1.0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-seed fraction of rows whose arg-max logit is the label: ``[S]``."""
    return (logits.argmax(-1) == labels).float().mean(1)


def mse(pred: torch.Tensor, target: torch.Tensor):
    """Per-seed ``loss[s] = mean (pred - target)^2 / 2`` over rows and outputs; ``(loss[S], cache)``."""
    r = pred - target
    return r.square().mean((1, 2)).mul_(0.5), r


def mse_backward(r: torch.Tensor) -> torch.Tensor:
    """``d loss / d pred = (pred - target) / (M * K)``."""
    return r / (r.shape[1] * r.shape[2])


# --- a pre-norm transformer block ---------------------------------------------------------------


def block_params(prefix: str, d: int, ff: int):
    """The block's parameters and their initialisation (``flat.Param`` arguments)."""
    from .flat import Param

    return (
        Param(f"{prefix}wqkv", (d, 3 * d), 1 / math.sqrt(d)),
        Param(f"{prefix}wo", (d, d), 1 / math.sqrt(d)),
        Param(f"{prefix}w1", (d, ff), 1 / math.sqrt(d)),
        Param(f"{prefix}b1", (ff,)),
        Param(f"{prefix}w2", (ff, d), 1 / math.sqrt(ff)),
        Param(f"{prefix}b2", (d,)),
    )


def causal_mask(t: int) -> torch.Tensor:
    """``[T, T]``: 0 where a query may attend (key position <= query position), -inf elsewhere."""
    return torch.full((t, t), float("-inf")).triu_(1)


def attention(x: torch.Tensor, wqkv, wo, *, seq: int, heads: int, mask: torch.Tensor):
    """Multi-head self-attention on ``x[S, B*T, D]`` (rows grouped in sequences of ``seq``).

    ``q, k, v = x wqkv`` split into heads; ``p = softmax(q k^T / sqrt(D/H) + mask)``;
    ``y = concat_heads(p v) wo``. ``mask[T, T]`` is added to the scores (0 or -inf).
    """
    s, rows, d = x.shape
    b, dh = rows // seq, d // heads
    qkv = torch.bmm(x, wqkv)
    if heads == 1:  # no head split: q, k, v are strided views, bmm takes them as they are
        q, k, v = qkv.view(s * b, seq, 3 * d).split(d, -1)
    else:
        q, k, v = qkv.view(s, b, seq, 3, heads, dh).permute(3, 0, 1, 4, 2, 5).reshape(3, s * b * heads, seq, dh).unbind(0)
    scale = 1 / math.sqrt(dh)
    p = torch.softmax(torch.baddbmm(mask, q, k.transpose(1, 2), alpha=scale), -1)
    o = torch.bmm(p, v)
    o = o.view(s, rows, d) if heads == 1 else o.view(s, b, heads, seq, dh).transpose(2, 3).reshape(s, rows, d)
    y = torch.bmm(o, wo)
    return y, (x, q, k, v, p, o, seq, heads, scale)


def attention_backward(dy: torch.Tensor, cache, wqkv, wo):
    """Gradients of ``attention``: ``(dx, dwqkv, dwo)``; softmax backward ``ds = p * (dp - sum(dp * p))``."""
    x, q, k, v, p, o, seq, heads, scale = cache
    s, rows, d = x.shape
    b, dh = rows // seq, d // heads
    dwo = torch.bmm(o.transpose(1, 2), dy)
    do = torch.bmm(dy, wo.transpose(1, 2)).view(s, b, seq, heads, dh).transpose(2, 3).reshape(s * b * heads, seq, dh)
    dv = torch.bmm(p.transpose(1, 2), do)
    ds = softmax_backward(torch.bmm(do, v.transpose(1, 2)), p).mul_(scale)
    dq = torch.bmm(ds, k)
    dk = torch.bmm(ds.transpose(1, 2), q)
    if heads == 1:
        dqkv = torch.cat((dq, dk, dv), -1).view(s, rows, 3 * d)
    else:
        dqkv = torch.stack((dq, dk, dv)).view(3, s, b, heads, seq, dh).permute(1, 2, 4, 0, 3, 5).reshape(s, rows, 3 * d)
    dwqkv = torch.bmm(x.transpose(1, 2), dqkv)
    dx = torch.bmm(dqkv, wqkv.transpose(1, 2))
    return dx, dwqkv, dwo


def block(x: torch.Tensor, p: dict, prefix: str, *, seq: int, heads: int, mask: torch.Tensor):
    """``x + attention(rms(x))``, then ``+ mlp(rms(.))`` with ``mlp(c) = relu(c w1 + b1) w2 + b2``."""
    wqkv, wo, w1, b1, w2, b2 = (p[prefix + n] for n in ("wqkv", "wo", "w1", "b1", "w2", "b2"))
    a, norm1 = rms_norm(x)
    y, att = attention(a, wqkv, wo, seq=seq, heads=heads, mask=mask)
    x1 = x + y
    c, norm2 = rms_norm(x1)
    h = torch.relu(linear(c, w1, b1))
    x2 = x1 + linear(h, w2, b2)
    return x2, (norm1, att, norm2, c, h)


def block_backward(dx2: torch.Tensor, cache, p: dict, prefix: str, grads: dict) -> torch.Tensor:
    """Backward of ``block``: fills ``grads`` with the block's parameter gradients; returns ``dx``."""
    wqkv, wo, w1, _, w2, _ = (p[prefix + n] for n in ("wqkv", "wo", "w1", "b1", "w2", "b2"))
    norm1, att, norm2, c, h = cache
    dh, grads[prefix + "w2"], grads[prefix + "b2"] = linear_backward(dx2, h, w2)
    dc, grads[prefix + "w1"], grads[prefix + "b1"] = linear_backward(relu_backward(dh, h), c, w1)
    dx1 = dx2 + rms_norm_backward(dc, norm2)
    da, grads[prefix + "wqkv"], grads[prefix + "wo"] = attention_backward(dx1, att, wqkv, wo)
    return dx1 + rms_norm_backward(da, norm1)


# --- the reference --------------------------------------------------------------------------------


def autograd_loss_and_grad(problem, p: dict, batch: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``problem.loss_and_grad`` with autograd in place of the hand-written backward: the same
    forward ops, taped. Seeds are independent models, so the gradient of the sum of their
    losses is each one's own. What the hand-written passes are checked against
    (``tests/search/test_layers.py``) and timed against (``benchmarks/evaluation.py --backward``)."""
    names = problem.layout.names
    with torch.enable_grad():
        leaves = {k: v.detach().requires_grad_() for k, v in p.items()}
        loss, _ = problem.forward(leaves, batch)
        grads = torch.autograd.grad(loss.sum(), [leaves[n] for n in names])
    problem.layout.pack(grads, out=grad)
    return loss.detach()
