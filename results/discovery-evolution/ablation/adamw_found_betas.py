"""Ablation: torch's AdamW (bias correction, eps) with the found program's betas (0.3672, 0.723)."""


def train(w, g, m, v, lr, step, beta1=0.3672, beta2=0.723, eps=1e-8, wd=0.01):
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
    decay = w * wd
    decay = decay * lr
    update = update + decay
    return update, m, v
