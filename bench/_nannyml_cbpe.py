"""Run inside bench/.venv-nannyml: NannyML's CBPE (multiclass accuracy) on a reference
and an analysis file written by bench/api_load.py; prints one JSON line with the
estimate per chunk.

Usage: python _nannyml_cbpe.py REFERENCE.parquet ANALYSIS.parquet CHUNK_SIZE CLASSES
(CLASSES comma-separated; the files hold ``proba_<class>``, ``predicted_class``, ``ts``,
and in the reference ``species``).
"""
import json
import sys

import nannyml as nml
import pandas as pd


def main() -> None:
    reference_path, analysis_path, chunk_size, classes = sys.argv[1:5]
    classes = classes.split(",")
    reference = pd.read_parquet(reference_path)
    analysis = pd.read_parquet(analysis_path)
    estimator = nml.CBPE(
        y_pred_proba={c: f"proba_{c}" for c in classes}, y_pred="predicted_class",
        y_true="species", timestamp_column_name="ts", metrics=["accuracy"],
        chunk_size=int(chunk_size), problem_type="classification_multiclass")
    estimator.fit(reference)
    result = estimator.estimate(analysis).filter(period="analysis").to_df()
    rows = []
    for _, r in result.iterrows():
        rows.append({"chunk": len(rows),
                     "start_index": int(r[("chunk", "start_index")]),
                     "end_index": int(r[("chunk", "end_index")]),
                     "value": float(r[("accuracy", "value")]),
                     "low": float(r[("accuracy", "lower_confidence_boundary")]),
                     "high": float(r[("accuracy", "upper_confidence_boundary")])})
    print(json.dumps({"nannyml": nml.__version__, "chunks": rows}))


if __name__ == "__main__":
    main()
