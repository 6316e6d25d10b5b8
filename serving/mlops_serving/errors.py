"""Domain errors of the model server; each carries its HTTP status.

They are raised anywhere below the routes (protocol parsing, data plane, auth) and turned into
responses in ONE place, :func:`mlops_serving.app.install_error_handlers`, in the body shape of
the protocol the request used. A client mistake is always a 4xx; a fault of the model is
:class:`ModelFaultError` (500, logged with its traceback); a model that is not loaded yet is
:class:`ModelNotReadyError` (503, which readiness probes and canary analysis understand).
"""

from __future__ import annotations

from mlops_platform.metric_names import CODE_CLIENT_CLOSED


class ServingError(Exception):
    """Base class: an expected failure answered with ``status_code`` and ``message``."""

    status_code = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def headers(self) -> dict[str, str]:
        return {}


class BadRequestError(ServingError):
    """The body cannot be read at all: malformed JSON or CSV, a missing top-level key."""

    status_code = 400
    code = "BAD_REQUEST"


class UnauthorizedError(ServingError):
    status_code = 401
    code = "UNAUTHENTICATED"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="mlops-serving"'}


class ForbiddenError(ServingError):
    status_code = 403
    code = "PERMISSION_DENIED"


class ModelNotFoundError(ServingError):
    status_code = 404
    code = "NOT_FOUND"


class PayloadTooLargeError(ServingError):
    """The body is over the byte limit, or the request has more rows than allowed."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class RequestTimeoutError(ServingError):
    """The client did not send the whole body within MLOPS_SERVING_BODY_TIMEOUT_S; the connection closes."""

    status_code = 408
    code = "REQUEST_TIMEOUT"

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class UnsupportedMediaTypeError(ServingError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class ModelInputError(ServingError):
    """422: the body is well-formed but not valid input for the model (its signature's features and
    types, NaN, an empty batch, a field of the wrong kind). Not the CLI's
    :class:`mlops_platform.errors.InvalidInputError` (exit 2), which is about a command's input."""

    status_code = 422
    code = "INVALID_INPUT"


class ClientClosedRequestError(ServingError):
    """The client went away before its request body was complete (nginx's 499 convention).

    Not a server fault: counted under its own code, logged at INFO without a traceback, and left
    out of the canary analysis' and the alert's error ratio. No response reaches the client."""

    status_code = int(CODE_CLIENT_CLOSED)
    code = "CLIENT_CLOSED_REQUEST"


class ModelFaultError(ServingError):
    """The model raised on valid input; the message carries the request id, not the model's error."""

    status_code = 500
    code = "MODEL_ERROR"


class ModelNotReadyError(ServingError):
    status_code = 503
    code = "NOT_READY"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class ParserUnavailableError(ServingError):
    """A large body could not be parsed because its parsing process died (the pool is replaced)."""

    status_code = 503
    code = "UNAVAILABLE"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class PredictionTimeoutError(ServingError):
    status_code = 504
    code = "TIMEOUT"
