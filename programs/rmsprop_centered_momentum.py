"""Centered RMSprop with momentum, exactly as torch.optim.RMSprop(momentum > 0, centered=True).

g <- g + wd * w
v <- alpha * v + (1 - alpha) * g * g
a <- interp(g, a, alpha)
b <- momentum * b + g / (sqrt(v - a * a) + eps)
w <- w - lr * b
"""


def train(w, g, v, avg, buf, lr, alpha=0.99, eps=1e-8, wd=0.0, momentum=0.9):
    g = addcmul(g, w, wd)
    v = v * alpha
    g_scaled = g * (1 - alpha)
    v = addcmul(v, g_scaled, g)
    avg = interp(g, avg, alpha)
    neg_avg = negative(avg)
    denom = addcmul(v, neg_avg, avg)
    denom = sqrt(denom)
    denom = denom + eps
    buf = buf * momentum
    scaled = exact_div(g, denom)
    buf = buf + scaled
    update = buf * lr
    return update, v, avg, buf
