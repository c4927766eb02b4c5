"""scikit-learn: estimators unfitted and fitted (fit, partial_fit, set_params all change the
estimator in place), pipelines and column transformers holding named estimators."""

from __future__ import annotations

from covcase import Case

SK = "scikit-learn"
I = (
    "import numpy as np\nimport pandas as pd\n"
    "sk_rng = np.random.RandomState(0)\n"
    "sk_X = sk_rng.normal(size=(60, 3))\n"
    "sk_y = (sk_X[:, 0] + sk_X[:, 1] > 0).astype(int)\n"
    "sk_yr = sk_X @ np.array([1.0, -2.0, 0.5]) + 0.1"
)

CASES = [
    Case(SK, "LinearRegression: unfitted, then fit", I + "\nfrom sklearn.linear_model import LinearRegression", "sk_lin = LinearRegression()",
         "sk_lin.fit(sk_X, sk_yr)", eq="estimator"),
    Case(SK, "LogisticRegression: set_params, then fit", I + "\nfrom sklearn.linear_model import LogisticRegression", "sk_logit = LogisticRegression()",
         "sk_logit.set_params(C=0.5)\nsk_logit.fit(sk_X, sk_y)", eq="estimator"),
    Case(SK, "Ridge: fitted, then refit on other data", I + "\nfrom sklearn.linear_model import Ridge", "sk_ridge = Ridge(alpha=1.0).fit(sk_X, sk_yr)",
         "sk_ridge.set_params(alpha=10.0)\nsk_ridge.fit(sk_X[:30], sk_yr[:30])", eq="estimator"),
    Case(SK, "SGDClassifier: partial_fit", I + "\nfrom sklearn.linear_model import SGDClassifier",
         "sk_sgd = SGDClassifier(random_state=0)\nsk_sgd.partial_fit(sk_X[:30], sk_y[:30], classes=[0, 1])", "sk_sgd.partial_fit(sk_X[30:], sk_y[30:])", eq="lambda a, b: fitted(a, b, sk_X)"),
    Case(SK, "StandardScaler: partial_fit", I + "\nfrom sklearn.preprocessing import StandardScaler", "sk_scaler = StandardScaler().partial_fit(sk_X[:20])",
         "sk_scaler.partial_fit(sk_X[20:])", eq="estimator"),
    Case(SK, "MiniBatchKMeans: partial_fit", I + "\nfrom sklearn.cluster import MiniBatchKMeans",
         "sk_mbk = MiniBatchKMeans(n_clusters=2, random_state=0, n_init=1)\nsk_mbk.partial_fit(sk_X[:30])", "sk_mbk.partial_fit(sk_X[30:])", eq="estimator"),
    Case(SK, "GaussianNB: partial_fit", I + "\nfrom sklearn.naive_bayes import GaussianNB", "sk_gnb = GaussianNB().partial_fit(sk_X[:30], sk_y[:30], classes=[0, 1])",
         "sk_gnb.partial_fit(sk_X[30:], sk_y[30:])", eq="estimator"),
    Case(SK, "MLPClassifier: partial_fit", I + "\nfrom sklearn.neural_network import MLPClassifier",
         "sk_mlp = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)\nsk_mlp.partial_fit(sk_X, sk_y, classes=[0, 1])", "sk_mlp.partial_fit(sk_X, sk_y)",
         eq="estimator"),
    Case(SK, "RandomForestClassifier: fit", I + "\nfrom sklearn.ensemble import RandomForestClassifier",
         "sk_forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)", "sk_forest.fit(sk_X, sk_y)",
         eq="lambda a, b: fitted(a, b, sk_X)"),
    Case(SK, "DecisionTreeRegressor: fit", I + "\nfrom sklearn.tree import DecisionTreeRegressor", "sk_tree = DecisionTreeRegressor(max_depth=3, random_state=0)",
         "sk_tree.fit(sk_X, sk_yr)", eq="lambda a, b: fitted(a, b, sk_X)"),
    Case(SK, "KNeighborsClassifier: fit", I + "\nfrom sklearn.neighbors import KNeighborsClassifier", "sk_knn = KNeighborsClassifier(n_neighbors=3)",
         "sk_knn.fit(sk_X, sk_y)", eq="lambda a, b: fitted(a, b, sk_X)"),
    Case(SK, "PCA: fit", I + "\nfrom sklearn.decomposition import PCA", "sk_pca = PCA(n_components=2)", "sk_pca.fit(sk_X)", eq="estimator"),
    Case(SK, "OneHotEncoder: fit", I + "\nfrom sklearn.preprocessing import OneHotEncoder", "sk_ohe = OneHotEncoder(handle_unknown='ignore')",
         "sk_ohe.fit([['a', 'x'], ['b', 'y'], ['a', 'z']])", eq="estimator"),
    Case(SK, "SimpleImputer: fit", I + "\nfrom sklearn.impute import SimpleImputer", "sk_imputer = SimpleImputer(strategy='median')",
         "sk_imputer.fit([[1.0, np.nan], [3.0, 4.0], [np.nan, 6.0]])", eq="estimator"),
    Case(SK, "LabelEncoder: fit", I + "\nfrom sklearn.preprocessing import LabelEncoder", "sk_labels = LabelEncoder()", "sk_labels.fit(['cat', 'dog', 'cat', 'emu'])",
         eq="estimator"),
    Case(SK, "TfidfVectorizer: fit (vocabulary dict)", I + "\nfrom sklearn.feature_extraction.text import TfidfVectorizer", "sk_tfidf = TfidfVectorizer()",
         "sk_tfidf.fit(['the cat sat', 'the dog ran', 'a cat ran'])",
         eq="lambda a, b: a.get_params() == b.get_params() and getattr(a, 'vocabulary_', None) == getattr(b, 'vocabulary_', None) and np.array_equal(getattr(a, 'idf_', np.zeros(0)), getattr(b, 'idf_', np.zeros(0)))"),
    Case(SK, "Pipeline: fit, with its steps named", I + "\nfrom sklearn.pipeline import Pipeline\nfrom sklearn.preprocessing import StandardScaler\nfrom sklearn.linear_model import LogisticRegression",
         "sk_step_scale = StandardScaler()\nsk_step_model = LogisticRegression()\nsk_pipe = Pipeline([('scale', sk_step_scale), ('model', sk_step_model)])",
         "sk_pipe.fit(sk_X, sk_y)", names=("sk_pipe", "sk_step_scale", "sk_step_model"), eq="estimator",
         same=("sk_pipe.named_steps['scale'] is sk_step_scale", "sk_pipe.steps[1][1] is sk_step_model")),
    Case(SK, "ColumnTransformer on a DataFrame: fit", I + "\nfrom sklearn.compose import ColumnTransformer\nfrom sklearn.preprocessing import OneHotEncoder, StandardScaler",
         "sk_frame = pd.DataFrame({'num': [1.0, 2.0, 3.0], 'cat': ['a', 'b', 'a']})\n"
         "sk_ct = ColumnTransformer([('n', StandardScaler(), ['num']), ('c', OneHotEncoder(), ['cat'])])",
         "sk_ct.fit(sk_frame)", names=("sk_ct",),
         eq="lambda a, b: a.get_params(deep=False).keys() == b.get_params(deep=False).keys() and hasattr(a, 'transformers_') == hasattr(b, 'transformers_') and (not hasattr(a, 'transformers_') or np.array_equal(a.transform(sk_frame), b.transform(sk_frame)))"),
    Case(SK, "GridSearchCV: fit", I + "\nfrom sklearn.model_selection import GridSearchCV\nfrom sklearn.linear_model import Ridge",
         "sk_search = GridSearchCV(Ridge(), {'alpha': [0.1, 1.0]}, cv=3)", "sk_search.fit(sk_X, sk_yr)",
         eq="lambda a, b: hasattr(a, 'best_params_') == hasattr(b, 'best_params_') and getattr(a, 'best_params_', None) == getattr(b, 'best_params_', None) and (not hasattr(a, 'best_estimator_') or estimator(a.best_estimator_, b.best_estimator_))"),
]
