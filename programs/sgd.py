"""SGD with momentum, dampening, Nesterov momentum and coupled weight decay, exactly as torch.optim.SGD.

g <- g + wd * w
b <- g                                          on the first step (torch starts the buffer at g)
b <- momentum * b + (1 - dampening) * g         on later steps
d <- g + momentum * b   if nesterov > 0, else b
d <- g                  if momentum = 0 (plain SGD: torch keeps no buffer then)
w <- w - lr * d

`nesterov` is 0 (off) or 1 (on). `where(c, x, y)` picks x where c > 0, and
`1.5 - step` is positive only on the first step.
"""


def train(w, g, buf, lr, step, momentum=0.0, dampening=0.0, wd=0.0, nesterov=0.0):
    g = addcmul(g, w, wd)
    later = buf * momentum
    later = addcmul(later, g, 1 - dampening)
    buf = where(1.5 - step, g, later)
    d = addcmul(g, buf, momentum)
    d = where(nesterov, d, buf)
    d = where(momentum, d, g)
    update = d * lr
    return update, buf
