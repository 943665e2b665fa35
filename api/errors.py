"""Domain errors. Services raise these; `api.main` translates them to HTTP once."""


class AppError(Exception):
    """Base class: `status` is the HTTP status the edge answers with."""

    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class InvalidInput(AppError):
    status = 422
    title = "Unprocessable Content"

    def __init__(self, detail: str, errors: list[str] | None = None):
        super().__init__(detail)
        self.errors = errors or []


class NotFound(AppError):
    status = 404
    title = "Not Found"


class Conflict(AppError):
    status = 409
    title = "Conflict"


class Unauthorized(AppError):
    status = 401
    title = "Unauthorized"


class Unavailable(AppError):
    """A dependency (model file, backend) is missing or down; retrying later may help.
    `retry_after` (seconds) becomes the answer's `Retry-After` header."""

    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class PayloadTooLarge(AppError):
    status = 413
    title = "Content Too Large"
