"""Lion (EvoLved Sign Momentum), Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms".

Numerics as lion-pytorch: w <- w * (1 - lr * wd); w <- w - lr * sign(interp(g, m, beta1));
m <- interp(g, m, beta2). The compiler recognises the decoupled weight decay below and applies
it that way. Use an lr 3-10x smaller than AdamW's and a weight decay 3-10x larger.
"""


def train(w, g, m, lr, beta1=0.9, beta2=0.99, wd=0.0):
    update = interp(g, m, beta1)
    update = sign(update)
    m = interp(g, m, beta2)
    decay = w * wd
    update = update + decay
    update = update * lr
    return update, m
