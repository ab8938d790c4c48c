"""The churn model: a Spark ML pipeline (features -> classifier -> calibration), one per candidate.

Class imbalance is handled with balanced class weights while fitting the classifier. Weights
shift the predicted odds, so a second, tiny logistic regression on the classifier's margin
(Platt scaling), fitted on customers held out from the classifier's fit, maps the scores back to
probabilities that match observed churn rates. Platt scaling is monotonic: it changes
calibration, never the ranking (ROC AUC, lift).
"""

from __future__ import annotations

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.churn.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from crm_lakehouse.config import CandidateParams
from crm_lakehouse.config.settings import CHURN_CANDIDATES

CANDIDATES = CHURN_CANDIDATES
PROBABILITY = "churn_probability"


def with_class_weights(df: DataFrame, *, positive_share: float) -> DataFrame:
    """``weight``: each class weighs half of the total, whatever its share of rows."""
    return df.withColumn("weight", F.when(F.col("label") == 1.0, 0.5 / positive_share)
                         .otherwise(0.5 / (1.0 - positive_share)))


def classifier_pipeline(candidate: str, params: CandidateParams) -> Pipeline:
    """Region one-hot + numeric features -> the candidate classifier (weighted by ``weight``)."""
    stages = []
    encoded = []
    for column in CATEGORICAL_FEATURES:
        stages.append(StringIndexer(inputCol=column, outputCol=f"{column}_index", handleInvalid="keep"))
        stages.append(OneHotEncoder(inputCol=f"{column}_index", outputCol=f"{column}_onehot", handleInvalid="keep"))
        encoded.append(f"{column}_onehot")
    stages.append(VectorAssembler(inputCols=[*NUMERIC_FEATURES, *encoded], outputCol="features"))
    if candidate == "gbt":
        classifier = GBTClassifier(featuresCol="features", maxIter=params.gbt_max_iter, maxDepth=params.gbt_max_depth,
                                   stepSize=params.gbt_step_size, subsamplingRate=params.gbt_subsampling_rate,
                                   seed=params.seed)
    elif candidate == "logistic_regression":
        stages.append(StandardScaler(inputCol="features", outputCol="scaled_features", withMean=True))
        classifier = LogisticRegression(featuresCol="scaled_features", regParam=params.lr_reg_param,
                                        elasticNetParam=params.lr_elastic_net, maxIter=200)
    else:
        raise ValueError(f"unknown churn candidate {candidate!r}; known: {', '.join(CANDIDATES)}")
    # Prefixed outputs leave the plain names to the calibration stage after it.
    classifier.setRawPredictionCol("model_raw").setProbabilityCol("model_probability") \
        .setPredictionCol("model_prediction").setLabelCol("label").setWeightCol("weight")
    return Pipeline(stages=[*stages, classifier])


def calibrated(classifier: PipelineModel, calibration_rows: DataFrame) -> PipelineModel:
    """The classifier followed by Platt scaling fitted on ``calibration_rows`` (unweighted).

    The last stage's class column is ``prediction``: MLflow's pyfunc flavor of a Spark model
    answers with that column, so ``mlflow.pyfunc.load_model(...).predict`` (and the input-example
    check when the model is logged) works on the registered model.
    """
    platt = LogisticRegression(featuresCol="model_raw", labelCol="label", rawPredictionCol="calibrated_raw",
                               probabilityCol="calibrated_probability", predictionCol="prediction",
                               regParam=1e-4, maxIter=100)
    fitted = platt.fit(classifier.transform(calibration_rows))
    return PipelineModel(stages=[*classifier.stages, fitted])


def churn_probability(scored: DataFrame) -> DataFrame:
    """Add ``churn_probability`` (a double) from a calibrated pipeline's output vector."""
    return scored.withColumn(PROBABILITY, vector_to_array("calibrated_probability")[1])


def feature_importances(model: PipelineModel, scored: DataFrame) -> dict[str, float]:
    """Feature name -> importance: GBT's gain-based importances, or |standardized coefficient|
    for logistic regression, normalized to sum to 1."""
    classifier = model.stages[-2]
    attrs = scored.schema["features"].metadata["ml_attr"]["attrs"]
    names = {a["idx"]: a["name"] for group in attrs.values() for a in group}
    if hasattr(classifier, "featureImportances"):
        values = classifier.featureImportances.toArray()
    else:
        values = [abs(v) for v in classifier.coefficients.toArray()]
    total = float(sum(values)) or 1.0
    return {names.get(i, f"feature_{i}"): float(v) / total for i, v in enumerate(values)}
