"""Names and sizes of the built-in datasets, without importing NumPy or Keras.

The API validates ``dataset`` and ``batch_size`` against this table; the worker's
``shared.datasets`` loads the arrays behind the same names.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    train_count: int
    test_count: int
    description: str


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset("mnist", 60_000, 10_000, "MNIST digits through keras.datasets.mnist"),
        BuiltinDataset(
            "fashion_mnist", 60_000, 10_000, "Fashion-MNIST through keras.datasets.fashion_mnist"
        ),
        BuiltinDataset(
            "mnist-sample", 4_000, 1_000, "5,000 real MNIST digits shipped with mnistq (offline)"
        ),
    )
}

UPLOAD_PREFIX = "upload:"
SPLITS = ("train", "test")

NUM_PIXELS = 784
NUM_CLASSES = 10

HIDDEN_ACTIVATIONS = ("relu", "sigmoid", "tanh")
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid", "linear")
LOSSES = ("cross_entropy", "mse")
ACTIVATION_ALIASES = {"reLU": "relu"}  # the seed's spelling


def normalise_activation(name: str) -> str:
    return ACTIVATION_ALIASES.get(name, name)


def architecture_problem(
    layers: list[int] | tuple[int, ...], hidden: str, output: str, loss: str
) -> str | None:
    """One sentence saying why an architecture is invalid, or None. The single rule book."""
    if len(layers) < 2:
        return f"layers must list at least 2 sizes (input and output), got {len(layers)}."
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in layers):
        return "layers must be positive integers."
    if layers[0] != NUM_PIXELS:
        return f"layers must start at {NUM_PIXELS} (28x28 pixels), got {layers[0]}."
    if layers[-1] != NUM_CLASSES:
        return f"layers must end at {NUM_CLASSES} (one unit per digit), got {layers[-1]}."
    if normalise_activation(hidden) not in HIDDEN_ACTIVATIONS:
        return f"hidden_activation must be one of {', '.join(HIDDEN_ACTIVATIONS)}, got {hidden!r}."
    if output not in OUTPUT_ACTIVATIONS:
        return f"output_activation must be one of {', '.join(OUTPUT_ACTIVATIONS)}, got {output!r}."
    if loss not in LOSSES:
        return f"loss must be one of {', '.join(LOSSES)}, got {loss!r}."
    if output == "linear" and loss == "cross_entropy":
        return (
            "a linear output cannot be trained with cross_entropy (the log of a raw score is "
            "meaningless); use softmax or sigmoid, or loss mse."
        )
    return None


def parameter_count(layers: list[int] | tuple[int, ...]) -> int:
    return sum((a + 1) * b for a, b in zip(layers[:-1], layers[1:], strict=False))
