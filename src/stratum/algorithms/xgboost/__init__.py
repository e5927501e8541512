"""The built-in XGBoost algorithm (sagemaker-xgboost-container's algorithm mode) on the xgboost package."""
