"""Churn: features and labels from silver, Spark ML training tracked in MLflow, batch scoring into gold."""
