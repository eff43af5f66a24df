"""Loss sensitivity, the paper's measure (Arpit et al., "A Closer Look at Memorization in Deep Networks",
ICML 2017, §3.2; ``docs/measures.md`` §1) — one engine, one package.

The formula, stated once for every module here:

    ḡ_x = (1/T) Σ_{t=1..T} g_x^t,    g_x^t = ‖∂L_t/∂x‖₁,

where θ_0 → θ_1 → … → θ_T are the parameters after each of the T optimizer updates of the run, L_t is the
mean cross-entropy of a fixed probe set P at θ_t, and x (a training input) acts on L_t only through the
updates it took part in (every earlier one: the paper unrolls the updates and back-propagates through them,
after Maclaurin et al. 2015). Contributions of several presentations of x add up before the norm.

Modules:

- :mod:`~.exact`: the probe set, the refusals, the brute-force unroll (``probe_times="all"``);
- :mod:`~.sampled`: the default, an unbiased estimate of the mean over t from K sampled probe steps, each
  term exact by a reverse sweep;
- :mod:`~.proxy`, :mod:`~.proxy_mlp`: the truncated horizon-H proxies (``loss_sensitivity_hH``; not the
  paper's measure) and their closed forms for the built-in MLP.
"""
