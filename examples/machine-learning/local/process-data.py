#!/usr/bin/env python3
"""Clean the weather CSV and turn it into numeric features for training.

    python3 process-data.py INPUT_CSV PROCESSED_CSV

Drops days whose RainTomorrow is unknown, fills missing readings (median for
numbers, most frequent value for categories), encodes categories as one-hot
columns and Yes/No as 1/0, adds the month, and marks the last 20% of dates as
the held-out test period (column Split: train or test), so training never sees
the future it is evaluated on.
"""

import sys

import pandas as pd

from outputs import set_output

CATEGORICAL = ["Location", "WindGustDir", "WindDir9am", "WindDir3pm"]
TEST_SHARE = 0.2


def process(data):
    data = data.dropna(subset=["RainTomorrow"]).copy()
    data["Date"] = pd.to_datetime(data["Date"], format="%Y-%m-%d")
    data["Month"] = data["Date"].dt.month
    for column in ("RainToday", "RainTomorrow"):
        data[column] = data[column].map({"Yes": 1, "No": 0})
    data["RainToday"] = data["RainToday"].fillna(0)
    numeric = [c for c in data.columns if c not in CATEGORICAL + ["Date", "RainTomorrow"]]
    for column in numeric:
        data[column] = pd.to_numeric(data[column], errors="coerce")
        data[column] = data[column].fillna(data[column].median())
    for column in CATEGORICAL:
        data[column] = data[column].fillna(data[column].mode().iloc[0])
    data = pd.get_dummies(data, columns=CATEGORICAL, dtype=int)

    dates = data["Date"].sort_values().unique()
    cutoff = dates[int(len(dates) * (1 - TEST_SHARE))]
    data["Split"] = (data["Date"] >= cutoff).map({True: "test", False: "train"})
    data["Date"] = data["Date"].dt.strftime("%Y-%m-%d")
    return data, pd.Timestamp(cutoff)


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    raw = pd.read_csv(argv[1], na_values=["NA"])
    processed, cutoff = process(raw)
    processed.to_csv(argv[2], index=False, lineterminator="\n")
    train = (processed["Split"] == "train").sum()
    print(f"processed {len(raw)} rows into {len(processed)} rows x {processed.shape[1]} columns: "
          f"{train} for training, {len(processed) - train} for testing (from {cutoff:%Y-%m-%d})")
    set_output("processed-rows", len(processed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
