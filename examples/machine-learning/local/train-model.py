#!/usr/bin/env python3
"""Train a rain-tomorrow classifier on the training period of the processed CSV.

    python3 train-model.py PROCESSED_CSV MODEL_FILE

A standard-scaled logistic regression, saved with joblib together with its
feature names.
"""

import sys

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from outputs import set_output

TARGET = "RainTomorrow"
NOT_FEATURES = ["Date", "Split", TARGET]


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    data = pd.read_csv(argv[1])
    train = data[data["Split"] == "train"]
    features = [c for c in data.columns if c not in NOT_FEATURES]
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(max_iter=2000),
    )
    model.fit(train[features], train[TARGET])
    joblib.dump({"model": model, "features": features}, argv[2])
    accuracy = model.score(train[features], train[TARGET])
    print(f"trained on {len(train)} rows and {len(features)} features; training accuracy {accuracy:.3f}")
    set_output("train-accuracy", f"{accuracy:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
