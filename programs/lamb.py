"""LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning"): Adam's step, plus
decoupled weight decay, rescaled per tensor by the trust ratio ||w|| / ||r||.

m <- interp(g, m, beta1);   v <- beta2 * v + (1 - beta2) * g * g
r = (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps) + wd * w
trust = ||w|| / ||r||   (1 where either norm is 0; norms over each parameter tensor)
w <- w - lr * trust * r
"""


def train(w, g, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-6, wd=0.0):
    m = interp(g, m, beta1)
    v = v * beta2
    g_scaled = g * (1 - beta2)
    v = addcmul(v, g_scaled, g)
    m_hat = exact_div(m, 1 - power(beta1, step))
    v_hat = exact_div(v, 1 - power(beta2, step))
    denom = sqrt(v_hat)
    denom = denom + eps
    r = exact_div(m_hat, denom)
    r = addcmul(r, w, wd)
    w_norm = tensor_norm(w)
    r_norm = tensor_norm(r)
    trust = exact_div(w_norm, r_norm)
    trust = where(r_norm, trust, 1.0)
    trust = where(w_norm, trust, 1.0)
    update = r * trust
    update = update * lr
    return update, m, v
