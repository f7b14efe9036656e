"""Adan (Xie et al. 2022, "Adaptive Nesterov Momentum"), as the authors' code (sail-sg/Adan)
computes it, with its proximal weight decay. The betas weigh the old value, as in that code.

d = g - g_prev   (0 on the first step)
m <- beta1 * m + (1 - beta1) * g
a <- beta2 * a + (1 - beta2) * d
n <- beta3 * n + (1 - beta3) * (g + beta2 * d)^2
k = sqrt(n) / sqrt(1 - beta3^step) + eps
w <- (w - lr / (1 - beta1^step) * m / k - lr * beta2 / (1 - beta2^step) * a / k) / (1 + lr * wd)

The update is w minus that new weight.
"""


def train(w, g, m, a, n, prev_g, lr, step, beta1=0.98, beta2=0.92, beta3=0.99, eps=1e-8, wd=0.0):
    prev = where(1.5 - step, g, prev_g)
    d = g - prev
    m = m * beta1
    m = addcmul(m, g, 1 - beta1)
    a = a * beta2
    a = addcmul(a, d, 1 - beta2)
    mix = d * beta2
    mix = mix + g
    n = n * beta3
    n_scaled = mix * (1 - beta3)
    n = addcmul(n, n_scaled, mix)
    denom = sqrt(n)
    denom = exact_div(denom, power(1 - power(beta3, step), 0.5))
    denom = denom + eps
    size_m = exact_div(lr, 1 - power(beta1, step))
    size_a = exact_div(lr * beta2, 1 - power(beta2, step))
    step_m = m * size_m
    step_m = exact_div(step_m, denom)
    new_w = w - step_m
    step_a = a * size_a
    step_a = exact_div(step_a, denom)
    new_w = new_w - step_a
    new_w = exact_div(new_w, 1 + lr * wd)
    update = w - new_w
    return update, m, a, n, g
