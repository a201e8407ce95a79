"""The one place where domain errors become gRPC status codes, and back."""

from __future__ import annotations

import grpc

from services.common import errors

_CODE_BY_ERROR: dict[type[errors.DreamForgeError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.DataLoss: grpc.StatusCode.DATA_LOSS,
    errors.Cancelled: grpc.StatusCode.CANCELLED,
}

_ERROR_BY_CODE: dict[grpc.StatusCode, type[errors.DreamForgeError]] = {
    code: error for error, code in _CODE_BY_ERROR.items()
}


def status_code_for(error: errors.DreamForgeError) -> grpc.StatusCode:
    """The status code a domain error leaves a server with (subclasses inherit their parent's)."""
    for cls in type(error).__mro__:
        code = _CODE_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.UNKNOWN


def error_from_rpc(exc: grpc.aio.AioRpcError | grpc.RpcError) -> errors.DreamForgeError:
    """The domain error a failed call stands for, so client code can handle it without gRPC."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.INTERNAL or code == grpc.StatusCode.UNKNOWN:
        return errors.Unavailable(f"server error: {details}")
    error_type = _ERROR_BY_CODE.get(code, errors.Unavailable)
    return error_type(details or code.name.lower())
