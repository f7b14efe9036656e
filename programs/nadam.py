"""NAdam (Dozat 2016) as torch.optim.NAdam computes it, with its momentum schedule and coupled weight decay.

g <- g + wd * w
mu_t = beta1 * (1 - 0.5 * 0.96^(step * momentum_decay))          (and mu_next at step + 1)
P <- P * mu_t                                   (mu_product: a scalar per tensor, 1 before step 1)
m <- interp(g, m, beta1);   v <- beta2 * v + (1 - beta2) * g * g
d = sqrt(v / (1 - beta2^step)) + eps
w <- w - lr * (1 - mu_t) / (1 - P) * g / d - lr * mu_next / (1 - P * mu_next) * m / d

The state starts at zero, so the product starts from `where(1.5 - step, 1, P)`: 1 on step 1.
torch keeps P in float32 but finishes the step sizes in float64 on the host; here they stay
0-d tensors, a rounding apart.
"""


def train(w, g, m, v, mu_product, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0, momentum_decay=0.004):
    g = addcmul(g, w, wd)
    bias2 = 1 - power(beta2, step)
    mu = beta1 * (1 - 0.5 * power(0.96, step * momentum_decay))
    mu_next = beta1 * (1 - 0.5 * power(0.96, (step + 1) * momentum_decay))
    previous = where(1.5 - step, 1.0, mu_product)
    mu_product = previous * mu
    m = interp(g, m, beta1)
    v = v * beta2
    g_scaled = g * (1 - beta2)
    v = addcmul(v, g_scaled, g)
    denom = exact_div(v, bias2)
    denom = sqrt(denom)
    denom = denom + eps
    size_g = exact_div(lr * (1 - mu), 1 - mu_product)
    size_m = exact_div(lr * mu_next, 1 - mu_product * mu_next)
    g_step = g * size_g
    g_step = exact_div(g_step, denom)
    m_step = m * size_m
    m_step = exact_div(m_step, denom)
    update = g_step + m_step
    return update, m, v, mu_product
