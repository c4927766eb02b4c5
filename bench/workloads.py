"""The notebooks the peer harness runs: each a list of code cells, generated here, no downloads.

A workload's cells are written to a real .ipynb with nbformat and run one by one in a kernel.
Data a notebook reads from disk (the EDA's CSV files) is written by ``prepare`` before any
kernel starts, into a directory every system's run shares read-only. Randomness is seeded, so
rerunning the notebook gives the same values, except where a workload says otherwise (the
awkward objects notebook keeps a wall-clock stamp, as real notebooks do).

Sizes: ``quick`` (smoke runs, minutes) and full. The full sizes follow the benchmark issue
(2M-row EDA frame); they are not tuned to any system.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    description: str
    cells: Callable[[bool, Path], list[str]]  # (quick, data_dir) -> cell sources
    prepare: Callable[[bool, Path], None] | None = None


def _c(src: str) -> str:
    return textwrap.dedent(src).strip("\n")


AGG = _c("""
    import matplotlib
    matplotlib.use("Agg")
""")


# --- (1) EDA --------------------------------------------------------------------------------------


def eda_rows(quick: bool) -> int:
    return 200_000 if quick else 2_000_000


def prepare_eda(quick: bool, data_dir: Path) -> None:
    """sales.csv (dirty on purpose: padded/mixed-case categories, missing discounts, returns with
    negative quantities, a free-text column), stores.csv and products.csv."""
    import numpy as np
    import pandas as pd

    n = eda_rows(quick)
    marker = data_dir / f"eda-{n}.done"
    if marker.exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    n_stores, n_products = 200, 5000
    categories = np.array(
        [
            "Grocery",
            " grocery",
            "Electronics",
            "electronics ",
            "Toys",
            "Home",
            " HOME",
            "Garden",
            "Books",
            "Sports",
        ]
    )
    regions = np.array(["north", "south", "east", "west", "central"])
    payments = np.array(["card", "cash", "voucher", "mobile"])
    days = pd.date_range("2022-01-01", "2024-12-31", freq="D").strftime("%Y-%m-%d").to_numpy()
    discount = rng.choice(
        [0.0, 0.05, 0.1, 0.2, 0.35, np.nan], n, p=[0.45, 0.15, 0.15, 0.1, 0.05, 0.1]
    )
    quantity = rng.integers(1, 12, n)
    quantity[rng.random(n) < 0.02] *= -1  # returns
    sales = pd.DataFrame(
        {
            "order_id": np.arange(1, n + 1),
            "date": days[rng.integers(0, len(days), n)],
            "store_id": rng.integers(1, n_stores + 1, n),
            "product_id": rng.integers(1, n_products + 1, n),
            "category": categories[rng.integers(0, len(categories), n)],
            "quantity": quantity,
            "unit_price": rng.gamma(2.0, 15.0, n).round(2),
            "discount": discount,
            "customer_age": np.where(rng.random(n) < 0.03, np.nan, rng.integers(18, 90, n)),
            "region": regions[rng.integers(0, len(regions), n)],
            "payment": payments[rng.integers(0, len(payments), n)],
            "payment_note": np.where(rng.random(n) < 0.1, "paid at counter", ""),
        }
    )
    sales.to_csv(data_dir / "sales.csv", index=False)
    cities = np.array(["Oslo", "Lima", "Pune", "Accra", "Quito", "Turin", "Perth", "Osaka"])
    pd.DataFrame(
        {
            "store_id": np.arange(1, n_stores + 1),
            "city": cities[rng.integers(0, len(cities), n_stores)],
            "store_size_m2": rng.integers(200, 5000, n_stores),
        }
    ).to_csv(data_dir / "stores.csv", index=False)
    pd.DataFrame(
        {
            "product_id": np.arange(1, n_products + 1),
            "brand": np.array([f"brand-{i:03d}" for i in range(300)])[
                rng.integers(0, 300, n_products)
            ],
            "weight_kg": rng.gamma(2.0, 0.8, n_products).round(3) + 0.05,
        }
    ).to_csv(data_dir / "products.csv", index=False)
    marker.write_text("ok\n")


def eda_cells(quick: bool, data_dir: Path) -> list[str]:
    return [
        AGG + "\nimport numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt",
        f'data_dir = "{data_dir}"',
        'sales = pd.read_csv(f"{data_dir}/sales.csv")',
        'stores = pd.read_csv(f"{data_dir}/stores.csv")\nproducts = pd.read_csv(f"{data_dir}/products.csv")',
        "sales.shape, stores.shape, products.shape",
        "sales.head()",
        "missing = sales.isna().sum()\nmissing",
        'sales["category"] = sales["category"].str.strip().str.lower()',
        'sales["category"].value_counts()',
        'returns = sales[sales["quantity"] < 0]\nsales = sales[sales["quantity"] > 0].copy()',
        'sales["discount"] = sales["discount"].fillna(0.0)',
        'sales["date"] = pd.to_datetime(sales["date"])',
        'sales["revenue"] = sales["quantity"] * sales["unit_price"] * (1 - sales["discount"])',
        'sales["month"] = sales["date"].dt.strftime("%Y-%m")',
        'sales.drop(columns=["payment_note"], inplace=True)',
        'monthly = sales.groupby("month")["revenue"].sum()',
        'fig1, ax1 = plt.subplots(figsize=(8, 4))\nmonthly.plot(ax=ax1)\nax1.set_title("Monthly revenue")',
        _c("""
            by_cat = sales.groupby("category").agg(
                orders=("order_id", "count"), revenue=("revenue", "sum"), avg_qty=("quantity", "mean")
            )
        """),
        'by_cat = by_cat.sort_values("revenue", ascending=False)\nby_cat',
        'merged = sales.merge(stores, on="store_id", how="left")',
        'merged = merged.merge(products, on="product_id", how="left")',
        'city_rev = merged.groupby("city")["revenue"].sum().sort_values()',
        'fig2, ax2 = plt.subplots()\ncity_rev.plot.barh(ax=ax2)\nax2.set_xlabel("revenue")',
        'merged["price_per_kg"] = merged["unit_price"] / merged["weight_kg"]',
        'outliers = merged[merged["price_per_kg"] > merged["price_per_kg"].quantile(0.99)]\nlen(outliers)',
        "merged = merged.drop(outliers.index)",
        'age_bins = pd.cut(merged["customer_age"], bins=[0, 25, 35, 50, 65, 100])',
        'merged["age_group"] = age_bins.astype(str)',
        'pivot = merged.pivot_table(index="region", columns="age_group", values="revenue", aggfunc="sum")',
        "pivot_share = pivot.div(pivot.sum(axis=1), axis=0)\npivot_share.round(3)",
        'fig3, ax3 = plt.subplots()\nax3.hist(merged["customer_age"].dropna(), bins=40)\nax3.set_title("Customer age")',
        'top_products = merged.groupby(["product_id", "brand"])["revenue"].sum().nlargest(20)',
        "del outliers, age_bins",
        'merged["weekday"] = merged["date"].dt.day_name()',
        'weekday_rev = merged.groupby("weekday")["revenue"].mean()',
        'daily = merged.set_index("date")["revenue"].resample("D").sum()',
        "rolling = daily.rolling(7).mean()",
        'fig4, ax4 = plt.subplots(figsize=(10, 4))\ndaily.plot(ax=ax4, alpha=0.4)\nrolling.plot(ax=ax4)\nax4.set_title("Daily revenue")',
        'corr = merged[["quantity", "unit_price", "discount", "revenue", "customer_age"]].corr()\ncorr.round(2)',
        'merged.loc[merged["discount"] > 0.3, "big_discount"] = True',
        'summary = {"rows": len(merged), "revenue": float(merged["revenue"].sum()), "cities": int(merged["city"].nunique())}\nsummary',
        'report = pd.DataFrame({"month": monthly.index, "revenue": monthly.to_numpy()})',
        'merged.drop(columns=["big_discount"], inplace=True)',
    ]


# --- (2) ML ---------------------------------------------------------------------------------------


def ml_cells(quick: bool, data_dir: Path) -> list[str]:
    n, trees = (5_000, 50) if quick else (60_000, 150)
    return [
        AGG + "\nimport numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt",
        _c("""
            from sklearn.compose import ColumnTransformer
            from sklearn.ensemble import HistGradientBoostingClassifier
            from sklearn.impute import SimpleImputer
            from sklearn.inspection import permutation_importance
            from sklearn.linear_model import LogisticRegression
            from sklearn.metrics import roc_auc_score, roc_curve
            from sklearn.model_selection import GridSearchCV, train_test_split
            from sklearn.pipeline import Pipeline
            from sklearn.preprocessing import OneHotEncoder, StandardScaler
        """),
        "rng = np.random.default_rng(42)",
        f"n = {n}",
        'X_num = rng.normal(size=(n, 8))\nplans = rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1])\nregions = rng.choice(["north", "south", "east", "west"], n)',
        'df = pd.DataFrame(X_num, columns=[f"x{i}" for i in range(8)])\ndf["plan"] = plans\ndf["region"] = regions',
        'df["tenure"] = rng.integers(1, 72, n)',
        _c("""
            logit = 0.8 * df["x0"] - 0.5 * df["x1"] + 0.3 * df["x2"] * df["x3"] - 0.02 * df["tenure"]
            logit += df["plan"].map({"basic": 0.4, "plus": 0.0, "pro": -0.6}) + rng.normal(0, 0.5, n)
            y = (logit > np.quantile(logit, 0.7)).astype(int)
        """),
        'df.loc[rng.random(n) < 0.05, "x3"] = np.nan',
        "df.describe().round(2)",
        "y.mean()",
        "train_df, test_df, y_train, y_test = train_test_split(df, y, test_size=0.25, random_state=0, stratify=y)",
        'num_cols = [f"x{i}" for i in range(8)] + ["tenure"]\ncat_cols = ["plan", "region"]',
        'numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])',
        'pre = ColumnTransformer([("num", numeric, num_cols), ("cat", OneHotEncoder(handle_unknown="ignore"), cat_cols)])',
        'logreg = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))])',
        "logreg.fit(train_df, y_train)",
        "proba = logreg.predict_proba(test_df)[:, 1]\nauc_logreg = roc_auc_score(y_test, proba)\nauc_logreg",
        'grid = GridSearchCV(logreg, {"clf__C": [0.01, 0.1, 1.0, 10.0]}, cv=3, scoring="roc_auc", n_jobs=1)',
        "grid.fit(train_df, y_train)",
        'cv_results = pd.DataFrame(grid.cv_results_)[["param_clf__C", "mean_test_score", "std_test_score"]]\ncv_results',
        _c(f"""
            hgb = Pipeline([
                ("pre", ColumnTransformer([("num", "passthrough", num_cols), ("cat", OneHotEncoder(handle_unknown="ignore"), cat_cols)])),
                ("clf", HistGradientBoostingClassifier(max_iter={trees}, random_state=0)),
            ])
        """),
        "hgb.fit(train_df, y_train)",
        "auc_hgb = roc_auc_score(y_test, hgb.predict_proba(test_df)[:, 1])\nauc_hgb",
        "sample = test_df.sample(min(2000, len(test_df)), random_state=0)\nperm = permutation_importance(hgb, sample, y_test.loc[sample.index], n_repeats=3, random_state=0, scoring='roc_auc')",
        "importances = pd.Series(perm.importances_mean, index=sample.columns).sort_values()",
        'fig, ax = plt.subplots()\nimportances.plot.barh(ax=ax)\nax.set_title("Permutation importance")',
        "fpr, tpr, thresholds = roc_curve(y_test, hgb.predict_proba(test_df)[:, 1])",
        'fig2, ax2 = plt.subplots()\nax2.plot(fpr, tpr)\nax2.plot([0, 1], [0, 1], "--")\nax2.set_xlabel("FPR")',
        'results = {"logreg": auc_logreg, "grid_best": grid.best_score_, "hgb": auc_hgb}\nresults',
        "best_model = hgb if auc_hgb > grid.best_score_ else grid.best_estimator_",
        'preds = pd.DataFrame({"y": y_test, "p": best_model.predict_proba(test_df)[:, 1]})',
        'calibration = preds.groupby(pd.qcut(preds["p"], 10), observed=True)["y"].mean()\ncalibration',
    ]


# --- (3) simulation -------------------------------------------------------------------------------


def simulation_cells(quick: bool, data_dir: Path) -> list[str]:
    size, steps, walkers, walk_len, particles = (
        (600, 60, 400, 2000, 50_000) if quick else (1500, 150, 2000, 5000, 500_000)
    )
    return [
        AGG + "\nimport numpy as np\nimport matplotlib.pyplot as plt",
        "rng = np.random.default_rng(7)",
        f"size, steps = {size}, {steps}",
        "grid = np.zeros((size, size))\ngrid[size // 2 - 20 : size // 2 + 20, size // 2 - 20 : size // 2 + 20] = 100.0",
        _c("""
            def diffuse(u, alpha=0.2):
                lap = np.zeros_like(u)
                lap[1:-1, 1:-1] = u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4 * u[1:-1, 1:-1]
                return u + alpha * lap
        """),
        "for i in range(steps):\n    grid = diffuse(grid)",
        "snapshots = [grid.copy()]",
        "for i in range(steps):\n    grid = diffuse(grid)\nsnapshots.append(grid.copy())",
        "heat_total = [float(s.sum()) for s in snapshots]\nheat_total",
        f"walks = rng.standard_normal(({walkers}, {walk_len})).cumsum(axis=1)",
        "final = walks[:, -1]\nspread = float(final.std())\nspread",
        "escaped = (np.abs(walks) > 3 * np.sqrt(walks.shape[1])).any(axis=1).mean()",
        f"pos = rng.random(({particles}, 2))\nvel = rng.normal(0, 0.01, ({particles}, 2))",
        _c("""
            energy = []
            for t in range(200):
                pos += vel
                out = (pos < 0) | (pos > 1)
                vel[out] *= -1
                energy.append(float((vel ** 2).sum()))
        """),
        "grid[: size // 4] *= 0.5",
        'fig, axes = plt.subplots(1, 2, figsize=(10, 4))\naxes[0].plot(heat_total, "o-")\naxes[1].plot(energy)',
        "hist, edges = np.histogram(final, bins=50)",
        "del walks",
        "for i in range(steps // 2):\n    grid = diffuse(grid)",
    ]


# --- (4) deep learning on the CPU -------------------------------------------------------------------


def dl_cells(quick: bool, data_dir: Path) -> list[str]:
    n = 4_000 if quick else 40_000
    epochs = 2 if quick else 4
    cells = [
        "import copy\nimport numpy as np\nimport torch\nfrom torch import nn\ntorch.manual_seed(0)\ntorch.set_num_threads(1)",
        f"n = {n}\nX = torch.randn(n, 64)\nw_true = torch.randn(64, 1)\ny = (X @ w_true + 0.1 * torch.randn(n, 1) > 0).float()",
        "split = int(0.8 * n)\nX_train, X_test = X[:split], X[split:]\ny_train, y_test = y[:split], y[split:]",
        "model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1))",
        "loss_fn = nn.BCEWithLogitsLoss()\nopt = torch.optim.Adam(model.parameters(), lr=1e-3)",
        "history = []\ncheckpoints = {}",
        _c("""
            def train_epoch(model, opt, batch=256):
                model.train()
                perm = torch.randperm(len(X_train))
                total = 0.0
                for i in range(0, len(perm), batch):
                    idx = perm[i:i + batch]
                    opt.zero_grad()
                    loss = loss_fn(model(X_train[idx]), y_train[idx])
                    loss.backward()
                    opt.step()
                    total += float(loss) * len(idx)
                return total / len(perm)
        """),
        _c("""
            def evaluate(model):
                model.eval()
                with torch.no_grad():
                    logits = model(X_test)
                return float(((logits > 0).float() == y_test).float().mean())
        """),
    ]
    for e in range(epochs):
        cells += [
            "history.append(train_epoch(model, opt))",
            f"checkpoints[{e}] = {{'model': copy.deepcopy(model.state_dict()), 'opt': copy.deepcopy(opt.state_dict()), 'acc': evaluate(model)}}",
        ]
    cells += [
        "best = max(checkpoints, key=lambda e: checkpoints[e]['acc'])\nbest, checkpoints[best]['acc']",
        "for g in opt.param_groups:\n    g['lr'] = 1e-4",
        "history.append(train_epoch(model, opt))",
        "final_acc = evaluate(model)\nfinal_acc",
        "weights = [p.detach().clone() for p in model.parameters()]",
        "model.load_state_dict(checkpoints[best]['model'])",
        "restored_acc = evaluate(model)",
        "summary = {'epochs': len(history), 'best': best, 'final': final_acc, 'restored': restored_acc}",
    ]
    return cells


# --- (5) partial changes --------------------------------------------------------------------------


def partial_cells(quick: bool, data_dir: Path) -> list[str]:
    rows = 100_000 if quick else 1_000_000
    return [
        "import numpy as np\nimport pandas as pd",
        f"rng = np.random.default_rng(1)\nrows = {rows}",
        "embeddings = rng.random((rows, 64), dtype=np.float32)",
        'table = pd.DataFrame({"id": np.arange(rows), "score": rng.random(rows), "group": rng.integers(0, 50, rows)})',
        'labels = [f"item-{i}" for i in range(rows // 10)]',
        'config = {"lr": 0.1, "epochs": 10, "tags": ["a", "b"]}',
        "steps_done = 0",
        "embeddings[123] = 0.0",
        'config["lr"] = 0.05',
        'table.loc[17, "score"] = -1.0',
        'labels.append("item-new")',
        "embeddings[1000:1010] *= 2",
        "steps_done += 1",
        'table.loc[table["group"] == 3, "score"] += 0.5',
        'config["tags"].append("c")',
        "embeddings[rows // 2] = 1.0",
        "labels[5] = 'renamed'",
        "steps_done += 1",
        'table.loc[rows - 1, "group"] = 99',
        "embeddings[-5:] = -1.0",
        'config["epochs"] += 5',
        "steps_done += 1",
    ]


# --- (6) a long session -------------------------------------------------------------------------------


def long_cells(quick: bool, data_dir: Path) -> list[str]:
    """1,000 small cells (quick: 150) on top of a 2 GB state (quick: 50 MB) that they do not touch."""
    n_cells = 150 if quick else 1000
    gib = 0.05 if quick else 2.0
    rows = int(gib * 2**30 / 8 / 1024)
    cells = [
        "import numpy as np",
        f"big = np.random.default_rng(0).random(({rows}, 1024))",
        "counter = 0\nlog = []\nstats = {}",
    ]
    for i in range(n_cells):
        kind = i % 4
        if kind == 0:
            cells.append("counter += 1")
        elif kind == 1:
            cells.append(f"log.append({i})")
        elif kind == 2:
            cells.append(f"stats['k{i % 13}'] = stats.get('k{i % 13}', 0) + {i}")
        else:
            cells.append("len(log), counter")
    return cells


# --- (7) awkward objects --------------------------------------------------------------------------


def awkward_cells(quick: bool, data_dir: Path) -> list[str]:
    return [
        "import collections\nimport functools\nimport itertools\nimport sqlite3\nimport threading\nimport time\n\nimport numpy as np\nimport pandas as pd",
        'data = {"a": list(range(1000)), "b": np.arange(10_000.0)}',
        "squares = (i * i for i in range(10**6))",
        "first = [next(squares) for i in range(5)]\nfirst",
        "lock = threading.Lock()",
        'log = open("events.log", "w")',
        'log.write("start\\n")',
        'conn = sqlite3.connect("work.db")\nconn.execute("create table if not exists events (id integer primary key, kind text, value real)")',
        'conn.executemany("insert into events(kind, value) values (?, ?)", [("ab"[i % 2], i * 0.5) for i in range(1000)])\nconn.commit()',
        "scale = lambda x: x * 2.5",
        _c("""
            def make_counter(start):
                count = start
                def step():
                    nonlocal count
                    count += 1
                    return count
                return step

            counter = make_counter(10)
        """),
        "counter()\ncounter()",
        'handlers = {"scale": scale, "count": counter, "sum": sum}',
        'table = pd.DataFrame({"x": np.arange(5000), "y": np.sin(np.arange(5000))})',
        'table["z"] = table["y"].map(scale)',
        'with lock:\n    total = float(table["z"].sum())',
        'rows = conn.execute("select kind, count(*), sum(value) from events group by kind").fetchall()\nrows',
        "more = [next(squares) for i in range(3)]",
        _c("""
            class Accumulator:
                def __init__(self):
                    self.items = []

                def add(self, x):
                    self.items.append(x)
                    return self

            acc = Accumulator().add(1).add(2)
        """),
        "acc.add(handlers['scale'](3))",
        'log.write(f"total={total}\\n")',
        'alias = data\nalias["c"] = "shared"',
        "square = functools.lru_cache(maxsize=None)(lambda k: k * k)\nsquare(4) + square(5)",
        "stamp = time.time()",
        "ranked = sorted(rows, key=lambda r: -r[2])",
        "ids = itertools.count(100)\nnext(ids)",
        "recent = collections.deque(maxlen=5)\nrecent.extend(range(10))",
        "log.flush()\ncounter()",
    ]


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            "eda",
            "(1) EDA",
            "a sales CSV (2M rows; quick 200k) read back, cleaned, grouped, merged, columns added and dropped in place, 4 figures",
            eda_cells,
            prepare_eda,
        ),
        Workload(
            "ml",
            "(2) ML",
            "scikit-learn pipelines on 60k rows (quick 5k), a 12-fit grid search, gradient boosting, permutation importance, 2 figures",
            ml_cells,
        ),
        Workload(
            "simulation",
            "(3) simulation",
            "numpy cells of seconds: heat diffusion on a 1500^2 grid, 2000 random walks, 500k particles (quick: smaller)",
            simulation_cells,
        ),
        Workload(
            "dl",
            "(4) deep learning",
            "a torch MLP (64-256-256-1) trained on 40k rows (quick 4k) for 4 epochs (quick 2), optimizer state, a deep copy of model and optimizer after each epoch",
            dl_cells,
        ),
        Workload(
            "partial",
            "(5) partial changes",
            "a 256 MB array, a 1M-row frame, a list and a dict (quick: 1/10), then cells that change a few elements each",
            partial_cells,
        ),
        Workload(
            "long",
            "(6) long session",
            "1,000 small cells (counters, a dict, appends; quick 150) on top of a 2 GB array (quick 50 MB) that no cell touches",
            long_cells,
        ),
        Workload(
            "awkward",
            "(7) awkward objects",
            "a generator, a lock, an open file, a sqlite3 connection, lambdas, closures, an lru_cache and ordinary data",
            awkward_cells,
        ),
    ]
}


def write_notebook(cells: list[str], path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))
    return path


def read_cells(path: Path) -> list[str]:
    nb = nbformat.read(str(path), as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]
