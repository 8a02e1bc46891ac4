//! The machine-learning example on this machine (python3 with pandas and scikit-learn).

use std::process::Command;

use serde_json::Value;

use crate::readme::readme_block;
use crate::support::*;

// ---------------------------------------------------------------------------
// Machine learning on this machine (python3 with pandas and scikit-learn)

fn require_python_ml() {
    let ok = Command::new("python3")
        .args(["-c", "import pandas, sklearn"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the machine-learning example needs python3 with pandas and scikit-learn: \
         `pip install pandas scikit-learn` (CI installs them)"
    );
}

#[test]
fn weather_generator_is_seeded_deterministic_and_shaped_like_the_kaggle_set() {
    require_python_ml();
    let dir = tempfile::tempdir().unwrap();
    let generate = |seed: &str, file: &str| {
        let path = dir.path().join(file);
        run_ok(
            Command::new("python3")
                .arg(repo().join("examples/machine-learning/local/generate-data.py"))
                .args([
                    "--seed",
                    seed,
                    "--locations",
                    "3",
                    "--days",
                    "200",
                    "--output",
                ])
                .arg(&path),
        );
        std::fs::read_to_string(path).unwrap()
    };
    let first = generate("7", "a.csv");
    assert_eq!(first, generate("7", "b.csv"), "same seed, same bytes");
    assert_ne!(first, generate("8", "c.csv"), "another seed, other data");
    let mut lines = first.lines();
    assert_eq!(
        lines.next().unwrap(),
        "Date,Location,MinTemp,MaxTemp,Rainfall,Evaporation,Sunshine,WindGustDir,WindGustSpeed,\
         WindDir9am,WindDir3pm,WindSpeed9am,WindSpeed3pm,Humidity9am,Humidity3pm,Pressure9am,\
         Pressure3pm,Cloud9am,Cloud3pm,Temp9am,Temp3pm,RainToday,RainTomorrow"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 600, "3 locations x 200 days");
    let rain_tomorrow: Vec<&str> = rows.iter().map(|r| r[22]).collect();
    let yes = rain_tomorrow.iter().filter(|v| **v == "Yes").count();
    assert!(
        (30..=300).contains(&yes),
        "rain on some days, not all: {yes}"
    );
    assert!(
        rows.iter().any(|r| r.contains(&"NA")),
        "readings go missing, as in the real set"
    );
    let err = run_err(
        Command::new("python3")
            .arg(repo().join("examples/machine-learning/local/generate-data.py"))
            .args(["--locations", "99", "--output", "/dev/null"]),
    );
    assert!(err.contains("--locations must be between 1 and"), "{err}");
}

#[test]
fn readme_machine_learning_walkthrough_runs_locally_and_learns() {
    require_python_ml();
    let _one_at_a_time = RELEASE_BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let output = repo().join("examples/machine-learning/local/output");
    let _ = std::fs::remove_dir_all(&output);
    let mut ran = String::new();
    for step in readme_block("machine-learning") {
        if step.line.starts_with("pip install") {
            continue; // checked by require_python_ml; CI installs them
        }
        let out = run_ok(
            Command::new("sh")
                .args(["-c", &step.line])
                .env("CARGO_TARGET_DIR", target_dir())
                .current_dir(repo()),
        );
        ran.push_str(&out);
    }
    for promise in [
        "Completed processing data: ",
        "Completed training machine learning model: training accuracy 0.",
        "Completed evaluating machine learning model: test accuracy 0.",
    ] {
        assert!(ran.contains(promise), "output lacks {promise:?}:\n{ran}");
    }
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("metrics.json")).unwrap())
            .unwrap();
    let number = |k: &str| {
        metrics[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} in {metrics}"))
    };
    assert!(
        number("accuracy") > number("baseline_accuracy") + 0.02,
        "the model beats always answering 'no rain': {metrics}"
    );
    assert!(number("roc_auc") > 0.85, "{metrics}");
    // The figures the scripts report through ROIERGASIAS_ENV reached the last print.
    assert!(
        ran.contains(&format!("test accuracy {:.3}", number("accuracy"))),
        "{ran}"
    );
    for file in [
        "weatherAUS.csv",
        "processed-weatherAUS.csv",
        "ml-model.joblib",
    ] {
        let path = output.join(file);
        assert!(path.is_file(), "{} was written", path.display());
    }
    let ignored = Command::new("git")
        .args([
            "check-ignore",
            "-q",
            "examples/machine-learning/local/output/metrics.json",
        ])
        .current_dir(repo())
        .status()
        .expect("git");
    assert!(ignored.success(), "the outputs are ignored by git");
}
