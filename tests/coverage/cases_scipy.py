"""scipy: sparse arrays and matrices of every format, frozen distributions that draw with their
own generator, interpolators and splines whose coefficients or settings change in place."""

from __future__ import annotations

from covcase import Case

SP = "scipy"
I = "import warnings\nimport numpy as np\nfrom scipy import sparse, stats, interpolate, optimize\nwarnings.simplefilter('ignore', sparse.SparseEfficiencyWarning)"

CASES = [
    Case(SP, "sparse.csr_matrix", I, "sp_csr = sparse.csr_matrix(np.eye(4))", "sp_csr[0, 3] = 5.0\nsp_csr.data[0] = -1.0", eq="sparse"),
    Case(SP, "sparse.csc_array", I, "sp_csc = sparse.csc_array(np.arange(12.0).reshape(3, 4))", "sp_csc.data *= 2\nsp_csc[2, 0] = 0.5", eq="sparse"),
    Case(SP, "sparse.coo_array", I, "sp_coo = sparse.coo_array(([1.0, 2.0], ([0, 1], [1, 0])), shape=(2, 2))", "sp_coo.data[1] = 9.0", eq="sparse"),
    Case(SP, "sparse.lil_matrix", I, "sp_lil = sparse.lil_matrix((3, 3))", "sp_lil[1, 2] = 4.0\nsp_lil[0, :] = 1.0", eq="sparse"),
    Case(SP, "sparse.dok_array", I, "sp_dok = sparse.dok_array((3, 3), dtype=np.float32)", "sp_dok[2, 1] = 7.0", eq="sparse"),
    Case(SP, "sparse.bsr_array", I, "sp_bsr = sparse.bsr_array(np.kron(np.eye(2), np.ones((2, 2))), blocksize=(2, 2))", "sp_bsr.data[0] *= 3", eq="sparse"),
    Case(SP, "sparse.dia_matrix", I, "sp_dia = sparse.dia_matrix((np.array([[1.0, 2.0, 3.0]]), [0]), shape=(3, 3))", "sp_dia.data[0, 1] = 20.0", eq="sparse"),
    Case(SP, "sparse matrix sharing data with an array", I, "sp_data = np.ones(3)\nsp_shared = sparse.csr_array((sp_data, [0, 1, 2], [0, 1, 2, 3]), shape=(3, 3))",
         "sp_data[1] = 42.0", names=("sp_shared", "sp_data"), eq={"sp_shared": "sparse", "sp_data": "arrays"},
         same=("np.shares_memory(sp_shared.data, sp_data)",)),
    Case(SP, "stats frozen distribution with its own generator", I,
         "sp_dist = stats.norm(loc=1.0, scale=2.0)\nsp_dist.random_state = np.random.default_rng(0)", "sp_dist.rvs(size=3)",
         eq="lambda a, b: a.args == b.args and a.kwds == b.kwds and rng(a.random_state, b.random_state)"),
    Case(SP, "stats.Normal (new distribution infrastructure) in a dict", I, "sp_models = {'n': stats.Normal(mu=0.0, sigma=1.0)}",
         "sp_models['u'] = stats.Uniform(a=0.0, b=2.0)",
         eq="lambda a, b: list(a) == list(b) and all(float(a[k].mean()) == float(b[k].mean()) and float(a[k].variance()) == float(b[k].variance()) for k in a)",
         note="distributions are immutable: a dict of them changes"),
    Case(SP, "gaussian_kde: bandwidth set in place", I, "sp_kde = stats.gaussian_kde(np.linspace(0, 1, 20))", "sp_kde.set_bandwidth(0.5)",
         eq="lambda a, b: a.factor == b.factor and np.array_equal(a.covariance, b.covariance) and np.array_equal(a(0.3), b(0.3))"),
    Case(SP, "interpolate.interp1d: data changed in place", I, "sp_interp = interpolate.interp1d([0.0, 1.0, 2.0], [0.0, 10.0, 20.0])",
         "sp_interp.y[1] = -10.0\nsp_interp.fill_value = 0.0\nsp_interp.bounds_error = False",
         eq="lambda a, b: np.array_equal(a.y, b.y) and a.bounds_error == b.bounds_error and state(a.fill_value, b.fill_value) and np.array_equal(a([0.5]), b([0.5]))"),
    Case(SP, "interpolate.CubicSpline: coefficients changed in place", I, "sp_spline = interpolate.CubicSpline([0, 1, 2, 3], [0.0, 1.0, 0.0, 1.0])",
         "sp_spline.c[0] *= 2\nsp_spline.extrapolate = False",
         eq="lambda a, b: np.array_equal(a.c, b.c) and a.extrapolate == b.extrapolate and np.array_equal(a([0.5, 4.0]), b([0.5, 4.0]), equal_nan=True)"),
    Case(SP, "interpolate.UnivariateSpline: smoothing refit in place", I,
         "sp_uspline = interpolate.UnivariateSpline(np.linspace(0, 1, 12), np.sin(np.linspace(0, 3, 12)), s=0.0)", "sp_uspline.set_smoothing_factor(0.5)",
         eq="lambda a, b: np.array_equal(a.get_coeffs(), b.get_coeffs()) and np.array_equal(a.get_knots(), b.get_knots())"),
    Case(SP, "interpolate.RegularGridInterpolator: values changed in place", I,
         "sp_grid = interpolate.RegularGridInterpolator((np.arange(3.0), np.arange(4.0)), np.arange(12.0).reshape(3, 4))",
         "sp_grid.values[1, 1] = 100.0\nsp_grid.method = 'nearest'",
         eq="lambda a, b: np.array_equal(a.values, b.values) and a.method == b.method and np.array_equal(a([[1.2, 1.1]]), b([[1.2, 1.1]]))"),
    Case(SP, "optimize.OptimizeResult", I, "sp_result = optimize.minimize(lambda x: (x[0] - 3) ** 2, [0.0], method='BFGS')",
         "sp_result['note'] = 'checked'\nsp_result.x[0] = 0.0",
         eq="lambda a, b: sorted(a) == sorted(b) and np.array_equal(a.x, b.x) and a.get('note') == b.get('note') and a.fun == b.fun"),
]
