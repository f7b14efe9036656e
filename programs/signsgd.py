"""signSGD (Bernstein et al. 2018): step by the sign of the gradient.

w <- w * (1 - lr * wd);   w <- w - lr * sign(g)          (sign(0) = 0)
"""


def train(w, g, lr, wd=0.0):
    update = sign(g)
    decay = w * wd
    update = update + decay
    update = update * lr
    return update
