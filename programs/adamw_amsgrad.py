"""AdamW with AMSGrad (Reddi et al. 2018) exactly as torch.optim.AdamW(amsgrad=True) computes it.

As programs/adamw.py, but the denominator uses the running maximum of the second moment:
vmax <- max(vmax, v)                              (torch: torch.maximum(vmax, v, out=vmax))
w <- w - (lr / (1 - beta1^step)) * m / (sqrt(vmax) / sqrt(1 - beta2^step) + eps)
"""


def train(w, g, m, v, vmax, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.01):
    m = interp(g, m, beta1)
    v = v * beta2
    g_scaled = g * (1 - beta2)
    v = addcmul(v, g_scaled, g)
    bias1 = 1 - power(beta1, step)
    bias2 = 1 - power(beta2, step)
    step_size = exact_div(lr, bias1)
    vmax = max(vmax, v)
    denom = sqrt(vmax)
    denom = exact_div(denom, power(bias2, 0.5))
    denom = denom + eps
    update = exact_div(m, denom)
    update = update * step_size
    decay = w * wd
    decay = decay * lr
    update = update + decay
    return update, m, v, vmax
