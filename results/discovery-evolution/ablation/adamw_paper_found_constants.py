"""Ablation: the found program without v = sinh(v), i.e. the paper's AdamW with its constants."""


def train(w, g, m, v, lr):
    g2 = square(g)
    m = interp(g, m, 0.3672)
    v = interp(g2, v, 0.723)
    sqrt_v = sqrt(v)
    update = m / sqrt_v
    wd = w * 0.326
    update = update + wd
    lr = lr * 0.00122
    update = update * lr
    return update, m, v
