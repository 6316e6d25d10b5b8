"""The drift job (orchestration; the detection library is :mod:`mlops_drift`)."""
