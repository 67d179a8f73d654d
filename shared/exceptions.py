"""Every error the service raises on purpose, each with a stable snake_case ``code``.

The API turns these into ``{"error": {"code", "message"}}`` bodies and the worker stores
``code`` and ``str(exc)`` on a failed job, so messages are one human sentence.
"""


class MnistqError(Exception):
    """Base class: ``code`` is machine-readable, ``str(exc)`` is for people."""

    code = "error"


class InvalidInput(MnistqError, ValueError):
    """Data or parameters that can never work (a 4xx at the API, a failed job in a worker)."""

    code = "invalid_input"


class InvalidArchitecture(InvalidInput):
    code = "invalid_architecture"


class InvalidWeightsFile(InvalidInput):
    code = "invalid_weights_file"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"


class DatasetUnavailable(MnistqError):
    """A named dataset could not be loaded (e.g. Keras cannot download it offline)."""

    code = "dataset_unavailable"


class TrainingDiverged(MnistqError):
    """The loss became NaN or infinite; the weights are garbage and are not kept."""

    code = "training_diverged"


class TrainingCancelled(MnistqError):
    """``should_stop`` returned True at a batch boundary."""

    code = "cancelled"
