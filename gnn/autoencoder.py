"""A graph autoencoder: unsupervised, it flags transactions whose neighbourhood it cannot rebuild.

Its input is what the GNN's first layer sees of a transaction (:class:`gnn.online.DenseInputs`):
the transaction's own features, its entities' features and the mean features of each entity's
past transactions, standardised, with absent entities and empty neighbourhoods at zero. An
encoder squeezes that neighbourhood into a small code and a decoder rebuilds it; trained on the
honest-looking bulk of the training period (no labels), it rebuilds ordinary neighbourhoods
well and unusual ones badly. The score is the mean squared reconstruction error.

Like the GNN, it needs only the entities' aggregated state, so it scores incrementally.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from gnn.online import DenseInputs


class GraphAutoencoder(nn.Module):
    """Encoder-decoder over a transaction's aggregated neighbourhood.

    Args:
        width: the flattened input's width (see :meth:`flatten`).
        hidden: the encoder's and decoder's hidden width.
        code: the bottleneck's width.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, width: int, hidden: int = 64, code: int = 8) -> None:
        super().__init__()
        self.width = width
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        self.encoder = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, code), nn.Tanh()
        )
        self.decoder = nn.Sequential(nn.Linear(code, hidden), nn.ReLU(), nn.Linear(hidden, width))

    def __repr__(self) -> str:
        return f"GraphAutoencoder(width={self.width}, code={self.encoder[2].out_features})"

    @staticmethod
    def flatten(inputs: DenseInputs) -> Tensor:
        """The autoencoder's input: own, entity and neighbour-mean features side by side."""
        n = len(inputs)
        ex = inputs.entity_x * inputs.has[:, :, None]
        nb = inputs.nb_mean * (inputs.nb_count > 0)[:, :, None]
        flat = np.concatenate([inputs.x, ex.reshape(n, -1), nb.reshape(n, -1)], axis=1)
        return torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32))

    def forward(self, v: Tensor) -> Tensor:
        """Per-row mean squared reconstruction error of flattened inputs ``v``."""
        z = (v - self.mean) / self.std
        return ((self.decoder(self.encoder(z)) - z) ** 2).mean(dim=1)


def fit_autoencoder(
    inputs: DenseInputs, *, seed: int, epochs: int = 6, batch: int = 4096
) -> GraphAutoencoder:
    """Train on ``inputs`` (no labels)."""
    torch.manual_seed(seed)
    v = GraphAutoencoder.flatten(inputs)
    model = GraphAutoencoder(v.shape[1])
    model.mean.copy_(v.mean(0))
    model.std.copy_(v.std(0).clamp_min(1e-3))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(v), generator=gen)
        for s in range(0, len(v), batch):
            loss = model(v[order[s : s + batch]]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def autoencoder_scores(model: GraphAutoencoder, inputs: DenseInputs) -> np.ndarray:
    """Reconstruction errors (higher = more unusual)."""
    with torch.no_grad():
        return model(GraphAutoencoder.flatten(inputs)).numpy().astype(np.float64)
