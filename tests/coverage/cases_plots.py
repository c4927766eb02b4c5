"""matplotlib, seaborn and plotly: figures, axes and artists changed through their setters and
plotting methods, compared by what every artist shows (data, text, colours, places)."""

from __future__ import annotations

from covcase import Case

MPL = "matplotlib"
I = "import matplotlib\nimport matplotlib.pyplot as plt\nfrom matplotlib.figure import Figure"
SNS = "seaborn"
ISNS = I + "\nimport seaborn as sns\nimport pandas as pd\nsns_data = pd.DataFrame({'x': [1, 2, 3, 4], 'y': [2.0, 1.0, 3.0, 5.0], 'g': ['a', 'a', 'b', 'b']})"
PLY = "plotly"
IPLY = "import plotly.graph_objects as go\nimport plotly.express as px"

CASES = [
    Case(MPL, "Figure (object API): a line plotted", I, "mpl_fig = Figure(figsize=(4, 3))\nmpl_fig_ax = mpl_fig.add_subplot()",
         "mpl_fig_ax.plot([0, 1, 2], [2, 0, 1], color='red', label='r')\nmpl_fig.suptitle('changed')", names=("mpl_fig", "mpl_fig_ax"), eq="artists",
         same=("mpl_fig_ax.figure is mpl_fig", "mpl_fig.axes[0] is mpl_fig_ax")),
    Case(MPL, "Figure and Axes from pyplot.subplots", I, "mpl_pfig, mpl_pax = plt.subplots()\nmpl_pax.plot([1, 2, 3])",
         "mpl_pax.set_title('title')\nmpl_pax.set_xlim(0, 10)\nmpl_pax.set_xlabel('x')", names=("mpl_pax", "mpl_pfig"), eq="artists",
         same=("mpl_pax.figure is mpl_pfig",)),
    Case(MPL, "Axes: scatter added, legend and log scale", I, "mpl_sfig = Figure()\nmpl_sax = mpl_sfig.add_subplot()",
         "mpl_sax.scatter([1, 2, 3], [3, 1, 2], s=[10, 20, 30], label='pts')\nmpl_sax.set_yscale('log')\nmpl_sax.legend()", names=("mpl_sax",), eq="artists"),
    Case(MPL, "Line2D: data and style set", I, "mpl_lfig = Figure()\nmpl_line, = mpl_lfig.add_subplot().plot([0, 1], [0, 1])",
         "mpl_line.set_ydata([1, 0])\nmpl_line.set_color('green')\nmpl_line.set_linewidth(3)", names=("mpl_line",), eq="artists",
         same=("mpl_line.figure is mpl_lfig",)),
    Case(MPL, "Text: text and colour set", I, "mpl_tfig = Figure()\nmpl_text = mpl_tfig.text(0.5, 0.5, 'hello')", "mpl_text.set_text('bye')\nmpl_text.set_color('blue')",
         names=("mpl_text",), eq="artists"),
    Case(MPL, "PathCollection (scatter): offsets and sizes set", I, "mpl_cfig = Figure()\nmpl_coll = mpl_cfig.add_subplot().scatter([0, 1], [1, 0])",
         "mpl_coll.set_offsets([[0.5, 0.5], [1, 1]])\nmpl_coll.set_sizes([50, 60])", names=("mpl_coll",), eq="artists"),
    Case(MPL, "AxesImage (imshow): data and colormap set", I + "\nimport numpy as np", "mpl_ifig = Figure()\nmpl_img = mpl_ifig.add_subplot().imshow(np.arange(6.0).reshape(2, 3))",
         "mpl_img.set_data(np.ones((2, 3)))\nmpl_img.set_cmap('gray')\nmpl_img.set_clim(0, 2)", names=("mpl_img",), eq="artists"),
    Case(MPL, "Rectangle patch: size and colour set", I + "\nfrom matplotlib.patches import Rectangle", "mpl_rfig = Figure()\nmpl_rect = mpl_rfig.add_subplot().add_patch(Rectangle((0, 0), 1, 1))",
         "mpl_rect.set_width(2.5)\nmpl_rect.set_facecolor('orange')", names=("mpl_rect",), eq="artists"),
    Case(MPL, "Figure: subplots added and size changed", I, "mpl_grid = Figure(figsize=(3, 3))", "mpl_grid.subplots(1, 2)\nmpl_grid.set_size_inches(6, 2)\nmpl_grid.axes[1].bar(['a', 'b'], [1, 2])",
         eq="artists"),
    Case(SNS, "lineplot Axes: title set", ISNS, "sns_fig = Figure()\nsns_ax = sns.lineplot(data=sns_data, x='x', y='y', ax=sns_fig.add_subplot())",
         "sns_ax.set_title('trend')\nsns_ax.axhline(2.0)", names=("sns_ax",), eq="artists"),
    Case(SNS, "FacetGrid: mapped and titled", ISNS, "sns_grid = sns.FacetGrid(sns_data, col='g')", "sns_grid.map(plt.scatter, 'x', 'y')\nsns_grid.set_titles('{col_name}')",
         eq="grid"),
    Case(SNS, "color palette (a list)", ISNS, "sns_palette = sns.color_palette('deep', 3)", "sns_palette.append((0.0, 0.0, 0.0))\nsns_palette[0] = (1.0, 1.0, 1.0)",
         eq="lambda a, b: type(a).__name__ == type(b).__name__ and list(a) == list(b)"),
    Case(PLY, "graph_objects.Figure: trace added", IPLY, "ply_fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))", "ply_fig.add_trace(go.Bar(x=['a'], y=[1]))",
         eq="plotly"),
    Case(PLY, "graph_objects.Figure: layout updated", IPLY, "ply_layout = go.Figure()", "ply_layout.update_layout(title='t', width=500)\nply_layout.update_xaxes(range=[0, 5])",
         eq="plotly"),
    Case(PLY, "plotly.express figure: traces updated", IPLY + "\nimport pandas as pd",
         "ply_px = px.scatter(pd.DataFrame({'a': [1, 2, 3], 'b': [3, 1, 2]}), x='a', y='b')", "ply_px.update_traces(marker_color='red', marker_size=12)",
         eq="plotly"),
    Case(PLY, "graph_objects trace: properties set", IPLY, "ply_trace = go.Scatter(x=[0, 1], y=[1, 0], mode='lines')", "ply_trace.y = [5, 6]\nply_trace.name = 'renamed'",
         eq="plotly"),
]
