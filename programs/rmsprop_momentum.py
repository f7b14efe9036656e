"""RMSprop with momentum, exactly as torch.optim.RMSprop(momentum > 0) computes it.

g <- g + wd * w
v <- alpha * v + (1 - alpha) * g * g
b <- momentum * b + g / (sqrt(v) + eps)
w <- w - lr * b
"""


def train(w, g, v, buf, lr, alpha=0.99, eps=1e-8, wd=0.0, momentum=0.9):
    g = addcmul(g, w, wd)
    v = v * alpha
    g_scaled = g * (1 - alpha)
    v = addcmul(v, g_scaled, g)
    denom = sqrt(v)
    denom = denom + eps
    buf = buf * momentum
    scaled = exact_div(g, denom)
    buf = buf + scaled
    update = buf * lr
    return update, v, buf
