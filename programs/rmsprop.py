"""RMSprop (Tieleman & Hinton 2012) exactly as torch.optim.RMSprop computes it (momentum 0, not centered).

g <- g + wd * w
v <- alpha * v + (1 - alpha) * g * g
w <- w - lr * g / (sqrt(v) + eps)

rmsprop_momentum, rmsprop_centered and rmsprop_centered_momentum are the other variants.
"""


def train(w, g, v, lr, alpha=0.99, eps=1e-8, wd=0.0):
    g = addcmul(g, w, wd)
    v = v * alpha
    g_scaled = g * (1 - alpha)
    v = addcmul(v, g_scaled, g)
    denom = sqrt(v)
    denom = denom + eps
    update = exact_div(g, denom)
    update = update * lr
    return update, v
