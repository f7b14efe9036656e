"""PowerSign (Bello et al. 2017, "Neural Optimizer Search with Reinforcement Learning"),
with base e and no sign decay, as tf.raw_ops.ApplyPowerSign computes it (logbase 1, sign_decay 1).

m <- beta * m + (1 - beta) * g
w <- w * (1 - lr * wd);   w <- w - lr * exp(sign(g) * sign(m)) * g

The gradient is scaled by e where it agrees in sign with its moving average, by 1/e where
it disagrees (and left alone where either is 0). The sign is read from the new m.
"""


def train(w, g, m, lr, beta=0.9, wd=0.0):
    m = interp(g, m, beta)
    agree = sign(g) * sign(m)
    update = exp(agree) * g
    decay = w * wd
    update = update + decay
    update = update * lr
    return update, m
