"""The from-scratch NumPy MLP: architecture, network, training loop and file formats.

Modules: ``activations`` and ``losses`` (the maths), ``network`` (Architecture, Network,
inference), ``train`` (SGD loop, EpochStats, TrainState, gradients), ``serialize`` (the
``.npz`` weights and checkpoint formats).
"""

from shared.mlp.network import Architecture, Network
from shared.mlp.serialize import (
    state_from_bytes,
    state_to_bytes,
    weights_from_bytes,
    weights_to_bytes,
)
from shared.mlp.train import (
    EpochStats,
    TrainState,
    compute_loss,
    loss_and_gradients,
    train,
)

__all__ = [
    "Architecture",
    "EpochStats",
    "Network",
    "TrainState",
    "compute_loss",
    "loss_and_gradients",
    "state_from_bytes",
    "state_to_bytes",
    "train",
    "weights_from_bytes",
    "weights_to_bytes",
]
