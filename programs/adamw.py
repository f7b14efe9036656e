"""AdamW (Loshchilov & Hutter 2019) exactly as torch.optim.AdamW computes it.

w <- w * (1 - lr * wd)
m <- interp(g, m, beta1);  v <- interp(g * g, v, beta2)
w <- w - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
"""


def train(w, g, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.01):
    m = interp(g, m, beta1)
    g2 = g * g
    v = interp(g2, v, beta2)
    bias1 = 1 - power(beta1, step)
    bias2 = 1 - power(beta2, step)
    step_size = exact_div(lr, bias1)
    bias2_sqrt = sqrt(bias2)
    denom = sqrt(v)
    denom = exact_div(denom, bias2_sqrt)
    denom = denom + eps
    update = exact_div(m, denom)
    update = update * step_size
    decay = w * wd
    decay = decay * lr
    update = update + decay
    return update, m, v
