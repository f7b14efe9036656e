"""Centered RMSprop (Graves 2013), exactly as torch.optim.RMSprop(centered=True) computes it.

g <- g + wd * w
v <- alpha * v + (1 - alpha) * g * g
a <- interp(g, a, alpha)                         (the mean gradient)
w <- w - lr * g / (sqrt(v - a * a) + eps)
"""


def train(w, g, v, avg, lr, alpha=0.99, eps=1e-8, wd=0.0):
    g = addcmul(g, w, wd)
    v = v * alpha
    g_scaled = g * (1 - alpha)
    v = addcmul(v, g_scaled, g)
    avg = interp(g, avg, alpha)
    neg_avg = negative(avg)
    denom = addcmul(v, neg_avg, avg)
    denom = sqrt(denom)
    denom = denom + eps
    update = exact_div(g, denom)
    update = update * lr
    return update, v, avg
