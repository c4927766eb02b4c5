"""networkx, sympy, Pillow and statsmodels."""

from __future__ import annotations

from covcase import Case

NX = "networkx"
INX = "import networkx as nx"
SY = "sympy"
ISY = "import sympy"
PIL = "pillow"
IPIL = "from PIL import Image, ImageDraw"
SM = "statsmodels"
ISM = ("import numpy as np\nimport pandas as pd\nimport statsmodels.api as sm\nimport statsmodels.formula.api as smf\n"
       "sm_rng = np.random.default_rng(0)\nsm_x = sm_rng.normal(size=40)\nsm_data = pd.DataFrame({'x': sm_x, 'y': 2 * sm_x + sm_rng.normal(size=40), 'k': (sm_x > 0).astype(int)})")

CASES = [
    Case(NX, "Graph: edges with attributes added", INX, "nx_g = nx.Graph()\nnx_g.add_edge(1, 2, weight=0.5)", "nx_g.add_edge(2, 3, weight=1.5)\nnx_g.add_node('lonely', color='red')",
         eq="graph"),
    Case(NX, "DiGraph: edge and node attributes changed", INX, "nx_dg = nx.DiGraph([(1, 2), (2, 3)])", "nx_dg.edges[1, 2]['w'] = 7\nnx_dg.nodes[3]['label'] = 'end'\nnx_dg.remove_edge(2, 3)",
         eq="graph"),
    Case(NX, "MultiGraph: parallel edges with keys", INX, "nx_mg = nx.MultiGraph()\nnx_mg.add_edge('a', 'b', key='k1')", "nx_mg.add_edge('a', 'b', key='k2', w=2)",
         eq="graph"),
    Case(NX, "Graph attributes (graph dict)", INX, "nx_named = nx.path_graph(4)", "nx_named.graph['name'] = 'path'\nnx_named.graph['tags'] = ['x']", eq="graph"),
    Case(NX, "subgraph view of a graph", INX, "nx_full = nx.cycle_graph(5)\nnx_view = nx_full.subgraph([0, 1, 2])", "nx_full.add_edge(0, 2)\nnx_full.nodes[1]['hit'] = True",
         names=("nx_view", "nx_full"), eq="graph", same=("nx_view.has_edge(0, 2) == nx_full.has_edge(0, 2)", "nx_view.nodes[1] is nx_full.nodes[1]")),
    Case(SY, "Matrix (mutable): entries set", ISY, "sy_x = sympy.Symbol('x')\nsy_m = sympy.Matrix([[1, sy_x], [0, 1]])", "sy_m[0, 0] = sy_x ** 2\nsy_m[1, 0] = sympy.Rational(1, 3)",
         names=("sy_m",), eq="lambda a, b: type(a).__name__ == type(b).__name__ and a == b"),
    Case(SY, "MutableSparseMatrix: entries set", ISY, "sy_sp = sympy.SparseMatrix(3, 3, {(0, 0): 1})", "sy_sp[2, 1] = sympy.pi",
         eq="lambda a, b: type(a).__name__ == type(b).__name__ and a == b"),
    Case(SY, "expressions (immutable) in a list", ISY, "sy_a, sy_b = sympy.symbols('a b', positive=True)\nsy_exprs = [sympy.sin(sy_a) ** 2 + sy_b]",
         "sy_exprs.append(sympy.diff(sy_exprs[0], sy_a))\nsy_exprs.append(sympy.Integral(sy_b, (sy_b, 0, 1)))", names=("sy_exprs",),
         eq="lambda a, b: a == b and all(x.free_symbols == y.free_symbols for x, y in zip(a, b))", note="expressions are immutable: a list of them changes"),
    Case(SY, "undefined Function applications in a dict", ISY, "sy_t = sympy.Symbol('t')\nsy_funcs = {'f': sympy.Function('f')(sy_t)}",
         "sy_funcs['df'] = sympy.Derivative(sy_funcs['f'], sy_t)", names=("sy_funcs",), eq="state", note="expressions are immutable: a dict of them changes"),
    Case(PIL, "Image RGB: pixels set", IPIL, "pil_img = Image.new('RGB', (4, 3), 'white')", "pil_img.putpixel((1, 1), (255, 0, 0))\npil_img.paste((0, 0, 255), (2, 0, 4, 1))", eq="image"),
    Case(PIL, "Image: drawn on with ImageDraw", IPIL, "pil_canvas = Image.new('L', (16, 16))", "ImageDraw.Draw(pil_canvas).rectangle((2, 2, 10, 10), fill=200)", eq="image"),
    Case(PIL, "Image P mode: palette and info changed", IPIL, "pil_pal = Image.new('P', (2, 2))\npil_pal.putpalette([0, 0, 0, 255, 255, 255])",
         "pil_pal.putpalette([10, 20, 30, 40, 50, 60])\npil_pal.info['comment'] = 'x'\npil_pal.putpixel((0, 0), 1)", eq="image"),
    Case(SM, "OLS results: remove_data", ISM, "sm_ols = sm.OLS(sm_data.y, sm.add_constant(sm_data.x)).fit()", "sm_ols.remove_data()", eq="results"),
    Case(SM, "formula OLS results: remove_data", ISM, "sm_formula = smf.ols('y ~ x', data=sm_data).fit()", "sm_formula.remove_data()", eq="results"),
    Case(SM, "GLM (binomial) results: remove_data", ISM, "sm_glm = smf.glm('k ~ x', data=sm_data, family=sm.families.Binomial()).fit()", "sm_glm.remove_data()",
         eq="results"),
    Case(SM, "OLS model: exog names set", ISM, "sm_model = sm.OLS(sm_data.y, sm.add_constant(sm_data.x))", "sm_model.exog_names[:] = ['const', 'slope']\nsm_model.k_constant = 0",
         eq="lambda a, b: a.exog_names == b.exog_names and a.k_constant == b.k_constant and np.array_equal(a.exog, b.exog)"),
]
