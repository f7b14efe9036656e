"""The best program of the laptop discovery run; it did NOT survive the funnel.

Where it came from: ``results/discovery-evolution`` (hash ``8a55f888f31b46ad``, evaluation 3,297
of 9,345), regularized evolution from the paper's AdamW warm start (``programs/adamw_paper.py``)
for 75 minutes on a 2-core laptop; the mutation that made it was
``m = interp(g, m, eps) -> m = interp(g, m, 0.3672)``. It is the paper's AdamW with other
constants: beta1 0.3672 (was 0.9), beta2 0.723 (``v = interp(g2, v, 0.723)``: a memory of
about 4 steps; was 0.999), weight decay 0.326 (was 0.01), lr scale 0.00122 (was 0.001), and
``v = sinh(v)`` on the stored second moment, which does nothing (below).

Simplification: ``symopt simplify 8a55f888 --run results/discovery-evolution --task quadratic
--task teacher_student --task digits_mlp --task char_lm`` finds nothing to remove: no dead code
or state, no rewrite, and dropping ``v = sinh(v)``, the only candidate, moves the proxy fitness
by 0.0032, above the 0.002 tolerance. At 10x it is inert: the program without it scores the same
on all six bench tasks to 3-4 digits (p >= 0.82).

Scores (fitness: gain in log-loss over AdamW tuned on lr, beta1 and weight decay, 0 = as good):
- the search's proxy suite (scale 1, 3 + 3 seeds): +0.0210 validation, +0.0156 held-out test;
  the warm start -0.0609 / -0.0447.
- the funnel at 10x (5 + 5 seeds, AdamW re-tuned there): -0.0240 +- 0.0091 against the
  baseline's +0.0005 +- 0.0118 (one-sided Welch p = 0.997), test -0.0036 +- 0.0100: fails.
- ``symopt bench`` (lr tuned over 24 settings for each program, weight decay too for adamw and
  lion; 5 + 5 seeds; test loss mean +- sd; p: Welch t-test against adamw):

  ==================  ================  ================  ================  =======
  task                this program      adamw             lion              p
  ==================  ================  ================  ================  =======
  quadratic@10        0.0075 +- 0.0001  0.0070 +- 0.0003  0.0070 +- 0.0003  0.019 (worse)
  teacher_student@10  0.0145 +- 0.0003  0.0148 +- 0.0008  0.0172 +- 0.0005  0.52
  digits_mlp@10       0.0646 +- 0.0065  0.0599 +- 0.0055  0.0927 +- 0.0118  0.25
  char_lm@10          2.3988 +- 0.0211  2.4467 +- 0.0151  2.6458 +- 0.0644  0.004 (better)
  tiny_gpt            2.2593 +- 0.0105  2.2542 +- 0.0165  2.3452 +- 0.0228  0.58
  digits_cnn          0.0350 +- 0.0083  0.0391 +- 0.0066  0.0671 +- 0.0110  0.41
  ==================  ================  ================  ================  =======

  Its one win (char_lm@10) is its betas: torch's AdamW with beta1 0.3672 and beta2 0.723 (bias
  correction, eps, tuned lr and weight decay) ties it there (2.4143 +- 0.0225, p = 0.30) and
  beats it on quadratic@10 and tiny_gpt (p < 0.001). The bench's adamw keeps torch's default
  betas; the funnel's baseline, which tunes beta1, beats this program at 10x.

What it shows: the search climbs (the random control never reached fitness 0 in 17,383
evaluations; this run's best passed it after 1,600), but on these proxy tasks what it climbs to
is a retuning of AdamW's betas for the suite's 100-200-step runs, not an algorithm.

Reproduce: ``symopt search --preset discovery --minutes 75 --workers 2 --out RUN`` (not
deterministic on Ray: another run finds another program), ``symopt report RUN``.
"""


def train(w, g, m, v, lr):
    g2 = square(g)
    m = interp(g, m, 0.3672)
    v = interp(g2, v, 0.723)
    sqrt_v = sqrt(v)
    v = sinh(v)
    update = m / sqrt_v
    wd = w * 0.326
    update = update + wd
    lr = lr * 0.00122
    update = update * lr
    return update, m, v
