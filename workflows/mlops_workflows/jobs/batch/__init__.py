"""Batch inference: ``mlops batch-predict`` scores CSV/Parquet inputs with a registered model version."""
