"""Lion (EvoLved Sign Momentum), Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms".

The paper's program:
    update = sign(interp(g, m, beta1)) + w * wd;   m <- interp(g, m, beta2);   w <- w - lr * update
written out with lion-pytorch's rounding: c = beta1 * m + (1 - beta1) * g as
`m * beta1` then a fused multiply-add (lion-pytorch: m.mul(beta1).add(g, alpha=1 - beta1)),
and the same for m. The compiler recognises the decoupled weight decay and applies it first,
w <- w * (1 - lr * wd), as lion-pytorch does. Use an lr 3-10x smaller than AdamW's and a
weight decay 3-10x larger.
"""


def train(w, g, m, lr, beta1=0.9, beta2=0.99, wd=0.0):
    update = m * beta1
    update = addcmul(update, g, 1 - beta1)
    update = sign(update)
    m = m * beta2
    m = addcmul(m, g, 1 - beta2)
    decay = w * wd
    update = update + decay
    update = update * lr
    return update, m
