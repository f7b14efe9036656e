"""Adamax (Kingma & Ba 2015, section 7.1) exactly as torch.optim.Adamax computes it.

g <- g + wd * w
m <- interp(g, m, beta1)
u <- max(beta2 * u, |g| + eps)                   (an infinity-norm second moment)
w <- w - lr / (1 - beta1^step) * m / u
"""


def train(w, g, m, u, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0):
    g = addcmul(g, w, wd)
    m = interp(g, m, beta1)
    u = u * beta2
    g_abs = abs(g)
    g_abs = g_abs + eps
    u = max(u, g_abs)
    bias1 = 1 - power(beta1, step)
    clr = exact_div(lr, bias1)
    update = exact_div(m, u)
    update = update * clr
    return update, m, u
