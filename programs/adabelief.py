"""AdaBelief (Zhuang et al. 2020): Adam whose second moment tracks the "belief" (g - m)^2,
as adabelief-pytorch computes it (decoupled weight decay, no rectification, no amsgrad).

m <- beta1 * m + (1 - beta1) * g
s <- beta2 * s + (1 - beta2) * (g - m)^2 + eps
w <- w * (1 - lr * wd)
w <- w - lr / (1 - beta1^step) * m / (sqrt(s) / sqrt(1 - beta2^step) + eps)
"""


def train(w, g, m, s, lr, step, beta1=0.9, beta2=0.999, eps=1e-16, wd=0.0):
    m = m * beta1
    m = addcmul(m, g, 1 - beta1)
    residual = g - m
    s = s * beta2
    scaled = residual * (1 - beta2)
    s = addcmul(s, scaled, residual)
    s = s + eps
    bias1 = 1 - power(beta1, step)
    bias2 = 1 - power(beta2, step)
    denom = sqrt(s)
    denom = exact_div(denom, power(bias2, 0.5))
    denom = denom + eps
    update = exact_div(m, denom)
    update = update * exact_div(lr, bias1)
    decay = w * wd
    decay = decay * lr
    update = update + decay
    return update, m, s
