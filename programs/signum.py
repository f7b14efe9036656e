"""Signum (Bernstein et al. 2018): signSGD with momentum; Lion with beta1 = beta2 (the paper's ablation).

m <- beta * m + (1 - beta) * g
w <- w * (1 - lr * wd);   w <- w - lr * sign(m)
"""


def train(w, g, m, lr, beta=0.9, wd=0.0):
    m = interp(g, m, beta)
    update = sign(m)
    decay = w * wd
    update = update + decay
    update = update * lr
    return update, m
