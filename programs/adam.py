"""Adam (Kingma & Ba 2015) exactly as torch.optim.Adam computes it, coupled weight decay included.

g <- g + wd * w                                 (L2 penalty folded into the gradient)
m <- interp(g, m, beta1)                         (torch: m.lerp_(g, 1 - beta1))
v <- beta2 * v + (1 - beta2) * g * g             (torch: v.mul_(beta2).addcmul_(g, g, value=1 - beta2))
w <- w - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
"""


def train(w, g, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0):
    g = addcmul(g, w, wd)
    m = interp(g, m, beta1)
    v = v * beta2
    g_scaled = g * (1 - beta2)
    v = addcmul(v, g_scaled, g)
    bias1 = 1 - power(beta1, step)
    bias2 = 1 - power(beta2, step)
    step_size = exact_div(lr, bias1)
    denom = sqrt(v)
    denom = exact_div(denom, power(bias2, 0.5))
    denom = denom + eps
    update = exact_div(m, denom)
    update = update * step_size
    return update, m, v
