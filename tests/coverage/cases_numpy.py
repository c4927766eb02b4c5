"""numpy: arrays of every kind of dtype and layout, views and what they share, masked arrays,
random generators."""

from __future__ import annotations

from covcase import Case

NP = "numpy"
I = "import numpy as np"

CASES = [
    Case(NP, "ndarray float64", I, "np_f = np.linspace(0.0, 1.0, 11)", "np_f *= 2\nnp_f[3] = np.nan", eq="arrays"),
    Case(NP, "ndarray int64 2-D", I, "np_i = np.arange(12).reshape(3, 4)", "np_i[1:, 2:] = -7", eq="arrays"),
    Case(NP, "ndarray bool", I, "np_b = np.zeros(8, dtype=bool)", "np_b[::3] = True", eq="arrays"),
    Case(NP, "ndarray complex128", I, "np_c = np.array([1 + 2j, 3 - 4j])", "np_c.imag[:] = 0", eq="arrays"),
    Case(NP, "ndarray float16 / uint8 / int8", I, "np_small = [np.ones(5, np.float16), np.arange(5, dtype=np.uint8), np.full(3, -1, np.int8)]",
         "np_small[1][0] = 255\nnp_small[2] -= 1", eq="state"),
    Case(NP, "ndarray unicode strings", I, "np_u = np.array(['alpha', 'beta'])", "np_u[1] = 'gamma'", eq="arrays"),
    Case(NP, "ndarray bytes strings", I, "np_s = np.array([b'ab', b'cd'], dtype='S4')", "np_s[0] = b'wxyz'", eq="arrays"),
    Case(NP, "ndarray datetime64 and timedelta64", I,
         "np_dt = np.array(['2024-01-01', '2024-02-29'], dtype='datetime64[D]')", "np_dt += np.timedelta64(1, 'D')", eq="arrays"),
    Case(NP, "ndarray structured dtype", I, "np_rec = np.zeros(3, dtype=[('id', 'i4'), ('pos', 'f8', (2,)), ('tag', 'U3')])",
         "np_rec['id'] = [1, 2, 3]\nnp_rec[1]['tag'] = 'xy'\nnp_rec['pos'][2] = (0.5, -0.5)", eq="arrays"),
    Case(NP, "np.recarray", I, "np_recarr = np.rec.array([(1, 2.0), (3, 4.0)], names='a,b')", "np_recarr.b *= 10\nnp_recarr[0].a = 9", eq="arrays"),
    Case(NP, "ndarray object dtype holding lists", I, "np_obj = np.empty(3, dtype=object)\nnp_obj[:] = [[1], 'two', None]",
         "np_obj[0].append(2)\nnp_obj[2] = {'k': 3}", eq="arrays"),
    Case(NP, "ndarray 0-d", I, "np_0d = np.array(3.5)", "np_0d[()] = -1.25", eq="arrays"),
    Case(NP, "ndarray Fortran order", I, "np_fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))", "np_fortran[:, 1] = 0",
         eq="arrays", same=("np_fortran.flags.f_contiguous",)),
    Case(NP, "ndarray 8 MB", I, "np_big = np.arange(1_000_000, dtype=np.float64)", "np_big[500_000] = -1.0", eq="arrays"),
    Case(NP, "ndarray made read-only", I, "np_ro = np.arange(4)", "np_ro.flags.writeable = False", eq="arrays"),
    Case(NP, "view: a slice of a base array", I, "np_base = np.arange(10.0)\nnp_view = np_base[2:6]", "np_view[0] = 100.0",
         names=("np_view", "np_base"), eq="arrays", same=("np_view.base is np_base", "np.shares_memory(np_base, np_view)")),
    Case(NP, "view: strided and transposed views of one base", I,
         "np_grid = np.arange(24.0).reshape(4, 6)\nnp_every2 = np_grid[:, ::2]\nnp_t = np_grid.T",
         "np_every2[1] = -1\nnp_t[0, 3] = 99", names=("np_grid", "np_every2", "np_t"), eq="arrays",
         same=("np.shares_memory(np_grid, np_every2)", "np.shares_memory(np_grid, np_t)", "np_t[0, 3] == np_grid[3, 0]")),
    Case(NP, "view: reshape and dtype view", I, "np_flat = np.zeros(8, dtype=np.int32)\nnp_square = np_flat.reshape(2, 4)\nnp_as_u8 = np_flat.view(np.uint8)",
         "np_square[1, 1] = 258", names=("np_flat", "np_square", "np_as_u8"), eq="arrays",
         same=("np.shares_memory(np_flat, np_square)", "np.shares_memory(np_flat, np_as_u8)", "np_as_u8[20] == np_square[1, 1] % 256")),
    Case(NP, "view: views of a view", I, "np_root = np.arange(20)\nnp_mid = np_root[5:15]\nnp_leaf = np_mid[::3]",
         "np_leaf[:] = 0", names=("np_root", "np_mid", "np_leaf"), eq="arrays",
         same=("np.shares_memory(np_root, np_leaf)", "np.shares_memory(np_mid, np_leaf)")),
    Case(NP, "view: only the view is named", I, "np_only_view = np.arange(10)[3:7]", "np_only_view[0] = -3", eq="arrays"),
    Case(NP, "masked array", I, "np_masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False], fill_value=-9.0)",
         "np_masked[0] = np.ma.masked\nnp_masked.mask[1] = False\nnp_masked.fill_value = 0.0", eq="arrays"),
    Case(NP, "np.random.Generator", I, "np_gen = np.random.default_rng(7)", "np_gen.random(5)", eq="rng"),
    Case(NP, "np.random.RandomState", I, "np_rs = np.random.RandomState(7)", "np_rs.randint(0, 10, size=3)", eq="rng"),
    Case(NP, "np.random.PCG64 bit generator", I, "np_pcg = np.random.PCG64(3)", "np_pcg.advance(1000)", eq="rng"),
    Case(NP, "np.random.Generator shared with a holder", I, "np_gen2 = np.random.default_rng(1)\nnp_sim = {'rng': np_gen2, 'draws': []}",
         "np_sim['draws'].append(float(np_gen2.normal()))", names=("np_gen2", "np_sim"), eq={"np_gen2": "rng", "np_sim": "state"},
         same=("np_sim['rng'] is np_gen2",)),
]
