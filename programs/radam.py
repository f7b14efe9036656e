"""RAdam (Liu et al. 2020) exactly as torch.optim.RAdam computes it, coupled weight decay included.

g <- g + wd * w
m <- interp(g, m, beta1);   v <- beta2 * v + (1 - beta2) * g * g
rho_inf = 2 / (1 - beta2) - 1;   rho_t = rho_inf - 2 * step * beta2^step / (1 - beta2^step)
r = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t))     (the rectifier)
w <- w - lr * m / (1 - beta1^step) * sqrt(1 - beta2^step) / (sqrt(v) + eps) * r     if rho_t > 5
w <- w - lr * m / (1 - beta1^step)                                                  otherwise
"""


def train(w, g, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0):
    g = addcmul(g, w, wd)
    m = interp(g, m, beta1)
    v = v * beta2
    g_scaled = g * (1 - beta2)
    v = addcmul(v, g_scaled, g)
    bias1 = 1 - power(beta1, step)
    beta2_t = power(beta2, step)
    bias2 = 1 - beta2_t
    rho_inf = exact_div(2, 1 - beta2) - 1
    rho_t = rho_inf - exact_div(2 * step * beta2_t, bias2)
    rect = exact_div((rho_t - 4) * (rho_t - 2) * rho_inf, (rho_inf - 4) * (rho_inf - 2) * rho_t)
    rect = power(rect, 0.5)
    m_hat = exact_div(m, bias1)
    plain = m_hat * lr
    denom = sqrt(v)
    denom = denom + eps
    adaptive = exact_div(power(bias2, 0.5), denom)
    adapted = plain * adaptive
    adapted = adapted * rect
    update = where(rho_t - 5, adapted, plain)
    return update, m, v
