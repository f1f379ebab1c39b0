"""Batched L-BFGS: each problem converges on its own, as scipy's L-BFGS-B does."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize, rosen, rosen_der

from pipeline.scaling._optim import CONVERGED_F, CONVERGED_GRAD, NON_FINITE, lbfgs_batch


def _rosenbrock(scales):
    """Batched scaled Rosenbrock: problem k minimises scales[k] * rosen(x)."""

    def fun(x, rows):
        s = scales[rows]
        f = np.array([rosen(xi) for xi in x]) * s
        g = np.stack([rosen_der(xi) for xi in x]) * s[:, None]
        return f, g

    return fun


def test_every_problem_reaches_the_rosenbrock_minimum():
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-2, 2, size=(12, 4))
    scales = np.geomspace(1e-3, 1e3, 12)  # objective scale must not change where it stops
    res = lbfgs_batch(_rosenbrock(scales), x0, gtol=1e-10, ftol=1e-14, max_iter=2000)
    assert np.all(res.converged), res.status
    np.testing.assert_allclose(res.x, 1.0, atol=1e-4)
    ref = minimize(rosen, x0[0], jac=rosen_der, method="L-BFGS-B")
    np.testing.assert_allclose(res.x[0], ref.x, atol=1e-4)


def test_problems_are_independent_of_their_batch():
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-2, 2, size=(6, 3))
    scales = np.ones(6)
    together = lbfgs_batch(_rosenbrock(scales), x0)
    alone = lbfgs_batch(_rosenbrock(scales[:1]), x0[:1])
    np.testing.assert_array_equal(together.x[0], alone.x[0])
    assert together.n_iter[0] == alone.n_iter[0]


def test_non_finite_start_is_reported_not_converged():
    def fun(x, rows):
        f = np.where(x[:, 0] > 5, np.nan, np.sum(x**2, axis=1))
        return f, 2 * x

    res = lbfgs_batch(fun, np.array([[1.0, 1.0], [10.0, 0.0]]))
    assert res.status[0] in (CONVERGED_GRAD, CONVERGED_F)
    assert res.status[1] == NON_FINITE and not res.converged[1]
