"""Feature engineering for the abalone pipeline, as in the SageMaker MLOps template's model-build
example: download the raw CSV named by --input-data, impute and scale the measurements, one-hot
encode sex, put the label (rings) first, and split 70/15/15 into train, validation and test (CSV,
no header)."""

import argparse
import logging
import os
import pathlib

import boto3
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

logger = logging.getLogger()
logger.setLevel(logging.INFO)
logger.addHandler(logging.StreamHandler())

FEATURE_COLUMNS = ["sex", "length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight",
                   "shell_weight"]
LABEL_COLUMN = "rings"
FEATURE_DTYPES = {"sex": str, "length": np.float64, "diameter": np.float64, "height": np.float64,
                  "whole_weight": np.float64, "shucked_weight": np.float64, "viscera_weight": np.float64,
                  "shell_weight": np.float64}
LABEL_DTYPE = {"rings": np.float64}

if __name__ == "__main__":
    logger.info("Starting preprocessing.")
    parser = argparse.ArgumentParser()
    parser.add_argument("--input-data", type=str, required=True)
    args = parser.parse_args()

    base_dir = "/opt/ml/processing"
    pathlib.Path(f"{base_dir}/data").mkdir(parents=True, exist_ok=True)
    bucket = args.input_data.split("/")[2]
    key = "/".join(args.input_data.split("/")[3:])

    logger.info("Downloading data from bucket: %s, key: %s", bucket, key)
    fn = f"{base_dir}/data/abalone-dataset.csv"
    boto3.resource("s3").Bucket(bucket).download_file(key, fn)

    logger.debug("Reading downloaded data.")
    df = pd.read_csv(fn, header=None, names=FEATURE_COLUMNS + [LABEL_COLUMN],
                     dtype={**FEATURE_DTYPES, **LABEL_DTYPE})
    os.unlink(fn)

    logger.debug("Defining transformers.")
    numeric_features = [c for c in FEATURE_COLUMNS if c != "sex"]
    numeric_transformer = Pipeline(steps=[("imputer", SimpleImputer(strategy="median")),
                                          ("scaler", StandardScaler())])
    categorical_transformer = Pipeline(steps=[
        ("imputer", SimpleImputer(strategy="constant", fill_value="missing")),
        ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    preprocess = ColumnTransformer(transformers=[("num", numeric_transformer, numeric_features),
                                                 ("cat", categorical_transformer, ["sex"])])

    logger.info("Applying transforms.")
    y = df.pop(LABEL_COLUMN)
    X_pre = preprocess.fit_transform(df)
    y_pre = y.to_numpy().reshape(len(y), 1)
    X = np.concatenate((y_pre, X_pre), axis=1)

    logger.info("Splitting %d rows of data into train, validation, test datasets.", len(X))
    np.random.default_rng(42).shuffle(X)
    train, validation, test = np.split(X, [int(0.7 * len(X)), int(0.85 * len(X))])

    logger.info("Writing out datasets to %s.", base_dir)
    pd.DataFrame(train).to_csv(f"{base_dir}/train/train.csv", header=False, index=False)
    pd.DataFrame(validation).to_csv(f"{base_dir}/validation/validation.csv", header=False, index=False)
    pd.DataFrame(test).to_csv(f"{base_dir}/test/test.csv", header=False, index=False)
