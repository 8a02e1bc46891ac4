#!/usr/bin/env python3
"""Evaluate the trained model on the held-out test period.

    python3 evaluate-model.py PROCESSED_CSV MODEL_FILE METRICS_JSON

Prints accuracy, precision, recall, ROC AUC and the confusion matrix, against
the baseline of always predicting "no rain"; writes them as JSON; passes
accuracy and ROC AUC on as workflow variables.
"""

import json
import sys

import joblib
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_score, recall_score, roc_auc_score

from outputs import set_output

TARGET = "RainTomorrow"


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    data = pd.read_csv(argv[1])
    saved = joblib.load(argv[2])
    model, features = saved["model"], saved["features"]
    test = data[data["Split"] == "test"]
    truth = test[TARGET]
    predicted = model.predict(test[features])
    scores = model.predict_proba(test[features])[:, 1]
    metrics = {
        "rows": int(len(test)),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "baseline_accuracy": round(float((truth == 0).mean()), 4),
        "precision": round(float(precision_score(truth, predicted, zero_division=0)), 4),
        "recall": round(float(recall_score(truth, predicted, zero_division=0)), 4),
        "roc_auc": round(float(roc_auc_score(truth, scores)), 4),
        "confusion_matrix": confusion_matrix(truth, predicted).tolist(),
    }
    with open(argv[3], "w", encoding="utf-8") as out:
        json.dump(metrics, out, indent=2)
        out.write("\n")
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    print(f"evaluated on {metrics['rows']} held-out days:")
    print(f"  accuracy  {metrics['accuracy']:.3f} (always 'no rain': {metrics['baseline_accuracy']:.3f})")
    print(f"  precision {metrics['precision']:.3f}  recall {metrics['recall']:.3f}  ROC AUC {metrics['roc_auc']:.3f}")
    print(f"  confusion matrix: {tn} true dry, {fp} false rain, {fn} missed rain, {tp} true rain")
    set_output("accuracy", f"{metrics['accuracy']:.3f}")
    set_output("roc-auc", f"{metrics['roc_auc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
