"""Adagrad (Duchi et al. 2011) exactly as torch.optim.Adagrad computes it (initial accumulator 0).

g <- g + wd * w
s <- s + g * g
w <- w - lr / (1 + (step - 1) * lr_decay) * g / (sqrt(s) + eps)
"""


def train(w, g, s, lr, step, lr_decay=0.0, eps=1e-10, wd=0.0):
    g = addcmul(g, w, wd)
    s = addcmul(s, g, g)
    denom = sqrt(s)
    denom = denom + eps
    decayed = (step - 1) * lr_decay
    clr = exact_div(lr, 1 + decayed)
    update = exact_div(g, denom)
    update = update * clr
    return update, s
