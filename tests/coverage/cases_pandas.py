"""pandas: frames, series, indexes and extension arrays, changed by the in-place operations
notebooks use (setitem, loc, inplace=True, attrs), and frames sharing memory with arrays."""

from __future__ import annotations

from covcase import Case

PD = "pandas"
I = "import numpy as np\nimport pandas as pd"

CASES = [
    Case(PD, "DataFrame: loc assignment", I, "pd_df = pd.DataFrame({'a': [1.0, 2.0, 3.0], 'b': ['x', 'y', 'z']})",
         "pd_df.loc[1, 'a'] = -1.0\npd_df.loc[2, 'b'] = 'w'", eq="frames"),
    Case(PD, "DataFrame: new column and del column", I, "pd_cols = pd.DataFrame({'a': range(4), 'b': range(4)})",
         "pd_cols['c'] = pd_cols.a * 2\ndel pd_cols['b']", eq="frames"),
    Case(PD, "DataFrame: inplace=True methods", I, "pd_inplace = pd.DataFrame({'k': [3, 1, 2], 'v': [1.0, None, 3.0]})",
         "pd_inplace.fillna(0.0, inplace=True)\npd_inplace.sort_values('k', inplace=True)\npd_inplace.rename(columns={'v': 'value'}, inplace=True)\n"
         "pd_inplace.set_index('k', inplace=True)", eq="frames"),
    Case(PD, "DataFrame: rows appended with loc", I, "pd_grow = pd.DataFrame({'n': [1, 2]})", "pd_grow.loc[len(pd_grow)] = [3]\npd_grow.loc[10] = [4]", eq="frames"),
    Case(PD, "DataFrame: drop rows and reset_index in place", I, "pd_drop = pd.DataFrame({'n': range(6)}, index=list('abcdef'))",
         "pd_drop.drop(index=['b', 'd'], inplace=True)\npd_drop.reset_index(inplace=True)", eq="frames"),
    Case(PD, "DataFrame: attrs and flags", I, "pd_meta = pd.DataFrame({'a': [1]})", "pd_meta.attrs['source'] = 'sensor'\npd_meta.flags.allows_duplicate_labels = False",
         eq="frames"),
    Case(PD, "DataFrame: many dtypes", I,
         "pd_mixed = pd.DataFrame({'i': [1, 2], 'f': [0.5, np.nan], 's': ['a', None], 'b': [True, False],\n"
         "    'cat': pd.Categorical(['u', 'v']), 'dt': pd.to_datetime(['2024-01-01', '2024-06-30']),\n"
         "    'td': pd.to_timedelta([1, 2], unit='h'), 'obj': [[1], {'k': 2}]})",
         "pd_mixed.loc[0, 'f'] = 7.5\npd_mixed.at[1, 'cat'] = 'u'\npd_mixed.loc[1, 'obj']['k'] = 3", eq="frames"),
    Case(PD, "DataFrame: nullable Int64, boolean, string dtypes", I,
         "pd_nullable = pd.DataFrame({'i': pd.array([1, None], dtype='Int64'), 'b': pd.array([True, None], dtype='boolean'),\n"
         "    's': pd.array(['p', None], dtype='string')})", "pd_nullable.loc[1, 'i'] = 5\npd_nullable.loc[0, 's'] = pd.NA", eq="frames"),
    Case(PD, "DataFrame: pyarrow-backed columns", I,
         "pd_arrow = pd.DataFrame({'n': pd.array([1, 2], dtype='int64[pyarrow]'), 's': pd.array(['a', 'b'], dtype='string[pyarrow]')})",
         "pd_arrow.loc[0, 'n'] = 10\npd_arrow['s2'] = pd_arrow.s + '!'", eq="frames"),
    Case(PD, "DataFrame: DatetimeIndex with frequency", I, "pd_ts = pd.DataFrame({'v': range(5)}, index=pd.date_range('2024-01-01', periods=5, freq='D'))",
         "pd_ts.loc['2024-01-03', 'v'] = 100\npd_ts.loc[pd.Timestamp('2024-01-09')] = [9]", eq="frames"),
    Case(PD, "DataFrame: tz-aware datetime column", I, "pd_tz = pd.DataFrame({'t': pd.date_range('2024-03-30', periods=3, freq='12h', tz='Europe/Paris')})",
         "pd_tz.loc[1, 't'] = pd.Timestamp('2025-01-01', tz='Europe/Paris')", eq="frames"),
    Case(PD, "DataFrame: MultiIndex rows and columns", I,
         "pd_multi = pd.DataFrame(np.arange(8.0).reshape(4, 2), index=pd.MultiIndex.from_product([['a', 'b'], [1, 2]], names=['k', 'n']),\n"
         "    columns=pd.MultiIndex.from_tuples([('x', 'lo'), ('x', 'hi')]))",
         "pd_multi.loc[('b', 1), ('x', 'hi')] = -1.0\npd_multi[('y', 'new')] = 0.0", eq="frames"),
    Case(PD, "DataFrame: PeriodIndex and IntervalIndex", I,
         "pd_periods = pd.DataFrame({'v': [1, 2, 3]}, index=pd.period_range('2024-01', periods=3, freq='M'))\n"
         "pd_bins = pd.Series([1, 2], index=pd.IntervalIndex.from_breaks([0, 1, 2]))",
         "pd_periods.loc[pd.Period('2024-02', 'M'), 'v'] = 20\npd_bins.iloc[0] = 10", names=("pd_periods", "pd_bins"), eq="frames"),
    Case(PD, "DataFrame sharing memory with a numpy array", I, "pd_src = np.zeros((3, 2))\npd_wrapped = pd.DataFrame(pd_src, columns=['a', 'b'], copy=False)",
         "pd_src[0, 0] = 5.0", names=("pd_wrapped", "pd_src"), eq={"pd_wrapped": "frames", "pd_src": "arrays"},
         same=("np.shares_memory(pd_wrapped.to_numpy(), pd_src)", "pd_wrapped.iloc[0, 0] == pd_src[0, 0]")),
    Case(PD, "DataFrames in one dict (shared objects)", I, "pd_frames = {'raw': pd.DataFrame({'a': [1, 2]})}\npd_raw = pd_frames['raw']",
         "pd_raw.loc[0, 'a'] = 100\npd_frames['copy'] = pd_raw.copy()", names=("pd_frames", "pd_raw"), eq="state",
         same=("pd_frames['raw'] is pd_raw",)),
    Case(PD, "Series: iloc assignment", I, "pd_s = pd.Series([1.5, 2.5, 3.5], name='vals')", "pd_s.iloc[0] = 0.0\npd_s.name = 'renamed'", eq="frames"),
    Case(PD, "Series: str dtype and in-place update", I, "pd_str = pd.Series(['a', 'b', 'c'], dtype='string')", "pd_str.update(pd.Series(['z'], index=[1]))", eq="frames"),
    Case(PD, "Series: sparse dtype", I, "pd_sparse = pd.Series(pd.arrays.SparseArray([0, 0, 1, 0]))", "pd_sparse.rename('sp', inplace=True)\npd_sparse.index = list('abcd')", eq="frames"),
    Case(PD, "Series: category dtype", I, "pd_catser = pd.Series(['lo', 'hi', 'lo'], dtype='category')", "pd_catser.iloc[1] = 'lo'", eq="frames"),
    Case(PD, "Categorical", I, "pd_cat = pd.Categorical(['a', 'b', 'a'], categories=['a', 'b', 'c'], ordered=True)", "pd_cat[0] = 'c'", eq="frames"),
    Case(PD, "Index: name changed in place", I, "pd_idx = pd.Index([10, 20, 30], name='x')", "pd_idx.name = 'y'", eq="frames"),
    Case(PD, "MultiIndex: names changed in place", I, "pd_mi = pd.MultiIndex.from_tuples([('a', 1), ('b', 2)], names=['k', 'n'])", "pd_mi.names = ['key', 'num']",
         eq="frames"),
    Case(PD, "DatetimeIndex in a list", I, "pd_dtis = [pd.date_range('2024-01-01', periods=3, freq='h', name='t')]",
         "pd_dtis.append(pd.DatetimeIndex(['2020-02-29'], tz='UTC'))", eq="state", note="indexes are immutable: a list of them changes"),
    Case(PD, "Timestamp, Timedelta, Period in a dict", I, "pd_scalars = {'ts': pd.Timestamp('2024-01-01 12:00', tz='US/Eastern')}",
         "pd_scalars['td'] = pd.Timedelta('1D2h')\npd_scalars['p'] = pd.Period('2024Q1')\npd_scalars['na'] = pd.NaT", eq="state",
         note="scalars are immutable: a dict of them changes"),
]
