"""Cautious Lion (Liang et al. 2024, "Cautious Optimizers", algorithm 2), as lion-pytorch's
`lion_pytorch.cautious_lion.Lion` computes it.

u = sign(beta1 * m + (1 - beta1) * g)
s = 1 where u * g > 0, else cautious               (drop, or shrink, components against the gradient)
s <- s / max(mean(s), 1e-5)                        (mean over each parameter tensor)
w <- w * (1 - lr * wd);   w <- w - lr * u * s
m <- beta2 * m + (1 - beta2) * g

cautious = 0 (lion-pytorch's default cautious_factor) masks; cautious = 1 is Lion.
"""


def train(w, g, m, lr, beta1=0.9, beta2=0.99, wd=0.0, cautious=0.0):
    c = m * beta1
    c = addcmul(c, g, 1 - beta1)
    u = sign(c)
    agree = u * g
    scale = where(agree, 1.0, cautious)
    mean = tensor_mean(scale)
    mean = max(mean, 1e-5)
    scale = exact_div(scale, mean)
    update = u * scale
    m = m * beta2
    m = addcmul(m, g, 1 - beta2)
    decay = w * wd
    update = update + decay
    update = update * lr
    return update, m
