"""polars and pyarrow: polars frames and series change in place (setitem, insert_column,
extend, append, column renames); Arrow's tables and arrays are immutable, so their rows show
a container of them changing, and a buffer over a bytearray shows memory shared with Python."""

from __future__ import annotations

from covcase import Case

PL = "polars"
IPL = "import polars as pl"
PA = "pyarrow"
IPA = "import pyarrow as pa"

CASES = [
    Case(PL, "DataFrame: setitem", IPL, "pl_df = pl.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']})", "pl_df[0, 'a'] = 10\npl_df[2, 'b'] = 'w'", eq="polars"),
    Case(PL, "DataFrame: insert_column and column rename", IPL, "pl_cols = pl.DataFrame({'a': [1, 2]})",
         "pl_cols.insert_column(1, pl.Series('b', [0.5, 1.5]))\npl_cols.columns = ['A', 'B']", eq="polars"),
    Case(PL, "DataFrame: extend (rows appended in place)", IPL, "pl_rows = pl.DataFrame({'k': ['a'], 'v': [1.0]})",
         "pl_rows.extend(pl.DataFrame({'k': ['b', 'c'], 'v': [2.0, None]}))", eq="polars"),
    Case(PL, "DataFrame: nested dtypes (list, struct, categorical, datetime)", IPL + "\nimport datetime",
         "pl_nested = pl.DataFrame({'l': [[1, 2], []], 's': [{'x': 1}, {'x': 2}], 'c': pl.Series(['u', 'v'], dtype=pl.Categorical),\n"
         "    't': [datetime.datetime(2024, 1, 1), None]})", "pl_nested.drop_in_place('c')\npl_nested[1, 't'] = datetime.datetime(2025, 5, 5)", eq="polars"),
    Case(PL, "Series: append and setitem", IPL, "pl_s = pl.Series('s', [1, 2, 3])", "pl_s.append(pl.Series('s', [4]))\npl_s[0] = -1", eq="polars"),
    Case(PL, "Series: string series renamed in place", IPL, "pl_names = pl.Series('who', ['ann', None, 'bo'])", "pl_names[1] = 'cy'\npl_names.extend(pl.Series('who', ['dee']))",
         eq="polars"),
    Case(PL, "LazyFrame in a dict", IPL, "pl_plans = {'base': pl.DataFrame({'a': [1, 2]}).lazy()}",
         "pl_plans['filtered'] = pl_plans['base'].filter(pl.col('a') > 1)",
         eq="lambda a, b: list(a) == list(b) and all(a[k].collect().equals(b[k].collect()) for k in a)", note="lazy frames are immutable: a dict of them changes"),
    Case(PA, "Table in a dict", IPA, "pa_tables = {'t': pa.table({'a': [1, 2], 'b': ['x', None]})}",
         "pa_tables['t2'] = pa_tables['t'].append_column('c', pa.array([0.5, 1.5]))",
         eq="lambda a, b: list(a) == list(b) and all(arrow(a[k], b[k]) for k in a)", note="tables are immutable: a dict of them changes"),
    Case(PA, "Table with schema metadata in a list", IPA, "pa_meta = [pa.table({'a': [1]}).replace_schema_metadata({'source': 'x'})]",
         "pa_meta.append(pa_meta[0].replace_schema_metadata({'source': 'y'}))",
         eq="lambda a, b: len(a) == len(b) and all(arrow(x, y) for x, y in zip(a, b))", note="tables are immutable: a list of them changes"),
    Case(PA, "RecordBatch and ChunkedArray in a dict", IPA,
         "pa_parts = {'batch': pa.record_batch({'n': [1, 2]})}", "pa_parts['chunked'] = pa.chunked_array([[1, 2], [3]])\npa_parts['dict'] = pa.array(['a', 'b', 'a']).dictionary_encode()",
         eq="lambda a, b: list(a) == list(b) and all(arrow(a[k], b[k]) for k in a)", note="arrays are immutable: a dict of them changes"),
    Case(PA, "Array of nested type in a list", IPA, "pa_arrays = [pa.array([{'x': 1, 'y': [1, 2]}, None])]",
         "pa_arrays.append(pa.array([1.5, None], type=pa.float32()))",
         eq="lambda a, b: len(a) == len(b) and all(arrow(x, y) for x, y in zip(a, b))", note="arrays are immutable: a list of them changes"),
    Case(PA, "Buffer over a bytearray (shared memory)", IPA, "pa_bytes = bytearray(b'hello')\npa_buf = pa.py_buffer(pa_bytes)",
         "pa_bytes[0] = ord('j')", names=("pa_buf", "pa_bytes"), eq={"pa_buf": "lambda a, b: a.to_pybytes() == b.to_pybytes()", "pa_bytes": "equal"},
         same=("pa_buf.to_pybytes() == bytes(pa_bytes)",),
         known={"detect": "a pyarrow Buffer does not show Python what memory it holds: it is not linked to the bytearray, so a change made through the bytearray is not recorded for it",
                "undo": "the Buffer is stored as a copy of its bytes, so after a restore it no longer shares the bytearray's memory"}),
]
