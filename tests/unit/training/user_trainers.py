"""Trainer modules as a data scientist writes them, for the trainer-contract tests."""

search_space = {"n_estimators": [5, 10]}
skops_trusted_types = ["sklearn.tree._tree.Tree"]


def fit(train, target, params):
    from sklearn.ensemble import RandomForestRegressor

    X, y = train.drop(columns=[target]), train[target]
    return RandomForestRegressor(random_state=0, max_depth=3, **params).fit(X, y)


def lightgbm_fit(train, target, params):
    import lightgbm

    X, y = train.drop(columns=[target]), train[target]
    return lightgbm.LGBMRegressor(n_estimators=10, verbose=-1, **params).fit(X, y)


def broken(train, target, params):
    raise ValueError("no column named price")


def nothing_loggable(train, target, params):
    return object()
