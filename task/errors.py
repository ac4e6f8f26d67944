"""The small set of errors Orca raises. Each API maps them to HTTP in one place."""


class OrcaError(Exception):
    """Base class of every error Orca raises on purpose."""


class ValidationError(OrcaError):
    """Input is malformed; the message names the field."""


class NotFound(OrcaError):
    """An id names nothing we know."""


class Conflict(OrcaError):
    """The request contradicts the current state (an id exists, a task is finished)."""


class InvalidTransition(Conflict):
    """A task was asked to move between states the transition table does not allow."""


class Unavailable(OrcaError):
    """The service cannot take the request now (shutting down, engine unreachable)."""


class WorkerUnavailable(Unavailable):
    """A worker did not answer, or answered with a server error."""


class WorkerUnreachable(WorkerUnavailable):
    """A worker gave no answer at all (refused, reset, timed out): the only failure that
    counts against its liveness, and only on its liveness check."""


class WorkerRejected(OrcaError):
    """A worker refused a request with a client error; the message is the worker's."""


class Forbidden(OrcaError):
    """The request is well formed but policy refuses it (an image not in ORCA_ALLOWED_IMAGES)."""
