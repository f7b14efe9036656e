"""The program the paper's search found, after its redundant statements were removed
automatically (paper-notes section 2). `symopt simplify discovered` reduces it to Lion's form.

m is written before it is read, so only v carries information between steps;
`m = cosh(update)` is dead. `m / sqrt(m * m)` is sign(m).
"""


def train(w, g, m, v, lr):
    g = clip(g, lr)
    g = arcsin(g)
    m = interp(g, v, 0.899)
    m2 = m * m
    v = interp(g, m, 1.109)
    abs_m = sqrt(m2)
    update = m / abs_m
    wd = w * 0.4602
    update = update + wd
    lr = lr * 0.0002
    m = cosh(update)
    update = update * lr
    return update, m, v
