"""OpenPAI's error body ``{code, message}`` and the codes its REST server uses (notes §2.1)."""

from __future__ import annotations


class ApiError(Exception):
    """An error the client caused or may act on; rendered as ``{"code": ..., "message": ...}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def unauthorized(message: str = "Your token is invalid.") -> ApiError:
    return ApiError(401, "UnauthorizedUserError", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "ForbiddenUserError", message)


def no_job(framework_name: str) -> ApiError:
    return ApiError(404, "NoJobError", f"Job {framework_name} is not found.")


def bad_params(message: str) -> ApiError:
    return ApiError(400, "InvalidParametersError", message)
