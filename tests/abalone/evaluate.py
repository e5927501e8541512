"""Evaluation for the abalone pipeline, as in the SageMaker MLOps template's model-build example:
untar the trained model, predict the test set and write the mean squared error to
/opt/ml/processing/evaluation/evaluation.json."""

import json
import logging
import pathlib
import tarfile

import numpy as np
import pandas as pd
import xgboost
from sklearn.metrics import mean_squared_error

logger = logging.getLogger()
logger.setLevel(logging.INFO)
logger.addHandler(logging.StreamHandler())

if __name__ == "__main__":
    logger.debug("Starting evaluation.")
    model_path = "/opt/ml/processing/model/model.tar.gz"
    with tarfile.open(model_path) as tar:
        tar.extractall(path=".")

    logger.debug("Loading xgboost model.")
    model = xgboost.Booster()
    model.load_model("xgboost-model")

    logger.debug("Reading test data.")
    df = pd.read_csv("/opt/ml/processing/test/test.csv", header=None)
    y_test = df.iloc[:, 0].to_numpy()
    df.drop(df.columns[0], axis=1, inplace=True)
    X_test = xgboost.DMatrix(df.values)

    logger.info("Performing predictions against test data.")
    predictions = model.predict(X_test)

    logger.debug("Calculating mean squared error.")
    mse = mean_squared_error(y_test, predictions)
    std = np.std(y_test - predictions)
    report_dict = {"regression_metrics": {"mse": {"value": float(mse), "standard_deviation": float(std)}}}

    output_dir = "/opt/ml/processing/evaluation"
    pathlib.Path(output_dir).mkdir(parents=True, exist_ok=True)
    logger.info("Writing out evaluation report with mse: %f", mse)
    with open(f"{output_dir}/evaluation.json", "w") as f:
        f.write(json.dumps(report_dict))
