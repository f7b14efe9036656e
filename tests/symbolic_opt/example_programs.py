"""Program texts more than one test file needs.

``LION_GUARDED``: Lion with ``sign(c)`` written as ``c / sqrt(c * c)``, the same optimizer up to
the 1e-8 division guard (where ``|c|`` is tiny the guarded quotient is not exactly +-1):
``simplify`` proves it so, and ``diff`` must say the same.
"""

LION_GUARDED = """def train(w, g, m, lr, beta1=0.9, beta2=0.99, wd=0.0):
    c = interp(g, m, beta1)
    s = c * c
    s = sqrt(s)
    u = c / s
    u = u + w * wd
    u = u * lr
    m = interp(g, m, beta2)
    return u, m
"""
