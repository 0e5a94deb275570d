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

from gnn.model import intra_op_threads
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
    def flatten(inputs: DenseInputs, rows: np.ndarray | None = None) -> Tensor:
        """The autoencoder's input: own, entity and neighbour-mean features side by side.

        Of ``rows`` only (default: all), built a slice at a time so that a large history is
        never copied whole.
        """
        index = np.arange(len(inputs)) if rows is None else rows
        f_t = inputs.x.shape[1]
        s_e = inputs.entity_x.shape[1] * inputs.entity_x.shape[2]
        j_t = inputs.nb_mean.shape[1] * f_t
        out = np.empty((len(index), f_t + s_e + j_t), dtype=np.float32)
        for a in range(0, len(index), 50_000):
            part = inputs.take(index[a : a + 50_000])
            k = len(part)
            out[a : a + k, :f_t] = part.x
            ex = part.entity_x * part.has[:, :, None]
            out[a : a + k, f_t : f_t + s_e] = ex.reshape(k, -1)
            nb = part.nb_mean * (part.nb_count > 0)[:, :, None]
            out[a : a + k, f_t + s_e :] = nb.reshape(k, -1)
        return torch.from_numpy(out)

    def forward(self, v: Tensor) -> Tensor:
        """Per-row mean squared reconstruction error of flattened inputs ``v``."""
        z = (v - self.mean) / self.std
        return ((self.decoder(self.encoder(z)) - z) ** 2).mean(dim=1)


def fit_autoencoder(
    inputs: DenseInputs,
    *,
    seed: int,
    rows: np.ndarray | None = None,
    epochs: int = 6,
    batch: int = 4096,
) -> GraphAutoencoder:
    """Train on the ``rows`` of ``inputs`` (default: all), without labels."""
    with intra_op_threads(1):
        return _fit(GraphAutoencoder.flatten(inputs, rows), seed, epochs, batch)


def _fit(v: Tensor, seed: int, epochs: int, batch: int) -> GraphAutoencoder:
    torch.manual_seed(seed)
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
    with torch.no_grad(), intra_op_threads(1):
        return model(GraphAutoencoder.flatten(inputs)).numpy().astype(np.float64)
