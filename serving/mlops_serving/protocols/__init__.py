"""Wire protocols: each turns its request body into a rows × features float64 matrix in the
model's signature order and renders the prediction in its own response shape. No HTTP and no
model code here: the routes (``mlops_serving.routes``) call these, the data plane predicts.

* :mod:`.native`: this platform's JSON (``/predict``, ``/models/{name}/predict``);
* :mod:`.mlflow`: MLflow's scoring protocol (``/invocations``);
* :mod:`.v2`: the Open Inference Protocol v2 (``/v2/...``), as KServe and Triton clients speak it.
"""
