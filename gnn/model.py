"""The heterogeneous GraphSAGE fraud model, and its exact inference paths.

The graph: transactions link to their entities (:data:`gnn.features.RELATIONS`: paid *by* an
account, *to* an account, *with* a card, *on* a device, *from* an IP, *at* a merchant); each
entity links back to the transactions it took part in **before** the one being scored, so the
neighbourhood of a transaction never holds the future. Two layers of mean-aggregating
GraphSAGE (:class:`torch_geometric.nn.SAGEConv`, one per relation and direction, summed per
node type, with separate ego weights per node type):

.. code-block:: text

    h1(t) = relu(R1_txn x_t      + sum_rel  L1[ent->txn, rel](x_entity(rel)))
    h1(e) = relu(R1_kind x_e     + sum_rel' L1[txn->ent, rel'](mean of x_u over e's past txns u))
    h2(t) = relu(R2_txn h1(t)    + sum_rel  L2[ent->txn, rel](h1(entity(rel))))
    score = sigmoid(head(h2(t)))

Because aggregation is a mean, an entity's layer-1 input is a running sum and a count of its
past transactions' features, so a new transaction's score needs only its entities' current
state (:mod:`gnn.online`), not a query of their neighbourhoods. :meth:`FraudSAGE.forward`
runs PyG message passing over a subgraph (:class:`torch_geometric.data.HeteroData`; used by
explanations and tests); :meth:`FraudSAGE.forward_dense` computes the same function from the
aggregated state (training, the incremental scorer). ``tests/gnn/test_model.py`` checks that
they agree to 1e-5. :class:`FusedDense` computes ``forward_dense`` again with its linear maps
stacked, for scoring (the serving pipeline's path; equal to 1e-5, with the same gradients).

Inputs are standardised inside the model (training means and deviations kept as buffers);
a neighbour mean is standardised only when there is at least one neighbour, so that an empty
neighbourhood means zero in both paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, SAGEConv

from gnn.features import ENTITY_FEATURES, ENTITY_KINDS, RELATIONS, TXN_FEATURES

TXN: Final = "txn"
NEIGHBOUR_SLOTS: Final = tuple(
    (slot, rel2) for slot, (_, kind) in enumerate(RELATIONS) for rel2, k2 in RELATIONS if k2 == kind
)
"""For each entity slot of a transaction, the relations through which that entity has past
transactions: ``(slot, relation)``; an account has two (``by`` and ``to``), others one."""


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads inside the block.

    Scoring and explaining work on a few hundred rows at a time, where a second thread saves
    nothing and, on a busy machine, makes each small operation wait for a descheduled worker
    (measured: an explanation took 11 s with two threads beside other jobs, 0.08 s with one).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rev(rel: str) -> str:
    return f"rev_{rel}"


class FraudSAGE(nn.Module):
    """Two-layer heterogeneous GraphSAGE scoring transactions.

    Args:
        hidden: width of both layers.
        dropout: dropout between layers while training.
        txn_dim: transaction features (default: :data:`gnn.features.TXN_FEATURES`).
        entity_dim: entity features (default: :data:`gnn.features.ENTITY_FEATURES`).

    Shapes:
        forward_dense: ``x [B, F_t]``, ``entity_x [B, S, F_e]``, ``has [B, S]``,
        ``nb_mean [B, len(NEIGHBOUR_SLOTS), F_t]``, ``nb_count [B, len(NEIGHBOUR_SLOTS)]``
        -> logits ``[B]``.
    """

    txn_mean: Tensor
    txn_std: Tensor
    ent_mean: Tensor
    ent_std: Tensor

    def __init__(
        self,
        hidden: int = 64,
        dropout: float = 0.1,
        txn_dim: int = len(TXN_FEATURES),
        entity_dim: int = len(ENTITY_FEATURES),
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.dropout = dropout
        self.txn_dim = txn_dim
        self.entity_dim = entity_dim
        self.register_buffer("txn_mean", torch.zeros(txn_dim))
        self.register_buffer("txn_std", torch.ones(txn_dim))
        self.register_buffer("ent_mean", torch.zeros(entity_dim))
        self.register_buffer("ent_std", torch.ones(entity_dim))
        self.root1 = nn.ModuleDict(
            {TXN: nn.Linear(txn_dim, hidden)}
            | {k: nn.Linear(entity_dim, hidden) for k in ENTITY_KINDS}
        )
        convs1: dict[tuple[str, str, str], nn.Module] = {}
        convs2: dict[str, nn.Module] = {}
        for rel, kind in RELATIONS:
            convs1[(TXN, rel, kind)] = SAGEConv((txn_dim, entity_dim), hidden, root_weight=False)
            convs1[(kind, _rev(rel), TXN)] = SAGEConv(
                (entity_dim, txn_dim), hidden, root_weight=False
            )
            convs2[_rev(rel)] = SAGEConv((hidden, hidden), hidden, root_weight=False)
        self.conv1 = HeteroConv(convs1, aggr="sum")
        self.conv2 = nn.ModuleDict(convs2)  # into transactions only: summed by hand
        self.root2 = nn.Linear(hidden, hidden)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def __repr__(self) -> str:
        return (
            f"FraudSAGE(txn={self.txn_dim}, entity={self.entity_dim}, hidden={self.hidden}, "
            f"relations={len(RELATIONS)}, aggr=mean)"
        )

    def set_scaling(
        self, txn_mean: Tensor, txn_std: Tensor, ent_mean: Tensor, ent_std: Tensor
    ) -> None:
        """Set the input standardisation (from the training split)."""
        self.txn_mean.copy_(txn_mean)
        self.txn_std.copy_(txn_std.clamp_min(1e-6))
        self.ent_mean.copy_(ent_mean)
        self.ent_std.copy_(ent_std.clamp_min(1e-6))

    def _conv(self, layer: HeteroConv, key: tuple[str, str, str]) -> SAGEConv:
        return layer.convs[key]  # type: ignore[no-any-return]

    def _conv2(self, rel: str) -> SAGEConv:
        return self.conv2[_rev(rel)]  # type: ignore[return-value]

    # -- the aggregated path ---------------------------------------------------------------

    def forward_dense(
        self,
        x: Tensor,
        entity_x: Tensor,
        has: Tensor,
        nb_mean: Tensor,
        nb_count: Tensor,
    ) -> Tensor:
        """Logits from each transaction's entities' aggregated state (see the module doc)."""
        tm, ts = self.txn_mean, self.txn_std
        xs = (x - tm) / ts
        es = (entity_x - self.ent_mean) / self.ent_std * has.unsqueeze(-1)
        nb = (nb_mean - tm) / ts * (nb_count > 0).unsqueeze(-1)
        h1t = self.root1[TXN](xs)
        for slot, (rel, kind) in enumerate(RELATIONS):
            conv = self._conv(self.conv1, (kind, _rev(rel), TXN))
            h1t = h1t + conv.lin_l(es[:, slot])
        h1t = torch.relu(h1t)
        h1e = [self.root1[kind](es[:, slot]) for slot, (_, kind) in enumerate(RELATIONS)]
        for j, (slot, rel2) in enumerate(NEIGHBOUR_SLOTS):
            kind = RELATIONS[slot][1]
            conv = self._conv(self.conv1, (TXN, rel2, kind))
            h1e[slot] = h1e[slot] + conv.lin_l(nb[:, j])
        h1t = nn.functional.dropout(h1t, self.dropout, self.training)
        h2 = self.root2(h1t)
        for slot, (rel, _) in enumerate(RELATIONS):
            he = torch.relu(h1e[slot]) * has[:, slot : slot + 1]
            he = nn.functional.dropout(he, self.dropout, self.training)
            h2 = h2 + self._conv2(rel).lin_l(he)
        h2 = torch.relu(h2)
        return self.head(h2).squeeze(-1)  # type: ignore[no-any-return]

    def fused(self) -> FusedDense:
        """:meth:`forward_dense` for scoring, fused (see :class:`FusedDense`); eval mode only."""
        return FusedDense(self)

    # -- the message-passing path ----------------------------------------------------------

    def forward(self, data: HeteroData) -> Tensor:
        """Logits of the ``txn`` nodes with ``data[TXN].target`` set, by message passing.

        ``data`` holds raw features: ``data[TXN].x``, ``data[kind].x`` and every edge type of
        :meth:`edge_types` (possibly empty). Entity nodes carry their state as of their target
        transaction, and edges into an entity come from transactions before it.
        """
        x_dict = {TXN: (data[TXN].x - self.txn_mean) / self.txn_std}
        for kind in ENTITY_KINDS:
            x_dict[kind] = (data[kind].x - self.ent_mean) / self.ent_std
        edges = {et: data[et].edge_index for et in self.edge_types()}
        out1 = self.conv1(x_dict, edges)
        h1 = {TXN: torch.relu(out1[TXN] + self.root1[TXN](x_dict[TXN]))}
        for kind in ENTITY_KINDS:
            h1[kind] = torch.relu(out1[kind] + self.root1[kind](x_dict[kind]))
        h2 = self.root2(h1[TXN])
        for rel, kind in RELATIONS:
            h2 = h2 + self._conv2(rel)((h1[kind], h1[TXN]), edges[(kind, _rev(rel), TXN)])
        h2 = torch.relu(h2)
        return self.head(h2[data[TXN].target]).squeeze(-1)  # type: ignore[no-any-return]

    @staticmethod
    def edge_types() -> list[tuple[str, str, str]]:
        """Every edge type of the model's graph."""
        out = []
        for rel, kind in RELATIONS:
            out += [(TXN, rel, kind), (kind, _rev(rel), TXN)]
        return out


class FusedDense:
    """:meth:`FraudSAGE.forward_dense` in eval mode, as a dozen tensor operations.

    ``forward_dense`` calls a linear map per relation and neighbour slot, about sixty module
    calls a batch: on the few rows of a micro-batch their fixed cost is most of a score. Here
    the maps that feed the same sum are concatenated (one product for a transaction's first
    layer) or stacked (one batched product for every entity slot's first layer, for the
    neighbour means and for the second layer), with their biases summed ahead. The same
    function to float rounding (``tests/gnn/test_model.py``: scores and input gradients),
    differentiable, so explanations use it too. A snapshot of the weights: build it again
    after training.

    Raises:
        ValueError: if the model is in training mode (its dropout would be left out).
    """

    def __init__(self, model: FraudSAGE) -> None:
        if model.training:
            raise ValueError("FusedDense: the model is in training mode; call model.eval()")
        m = model
        with torch.no_grad():
            self.txn_mean, self.txn_std = m.txn_mean.clone(), m.txn_std.clone()
            self.ent_mean, self.ent_std = m.ent_mean.clone(), m.ent_std.clone()
            # layer 1, transactions: [x | entity slots] @ [R1_txn | L1 per slot]^T
            root_t = _linear(m.root1[TXN])
            into_txn = [
                _linear(m._conv(m.conv1, (kind, _rev(rel), TXN)).lin_l) for rel, kind in RELATIONS
            ]
            self.w1t = torch.cat([root_t[0], *(w for w, _ in into_txn)], 1).t()
            self.b1t = root_t[1] + torch.stack([b for _, b in into_txn]).sum(0)
            # layer 1, entities: per slot its kind's root map; neighbour means per slot
            roots = [_linear(m.root1[kind]) for _, kind in RELATIONS]
            nbs = [
                _linear(m._conv(m.conv1, (TXN, rel2, RELATIONS[slot][1])).lin_l)
                for slot, rel2 in NEIGHBOUR_SLOTS
            ]
            self.w1e = torch.stack([w.t() for w, _ in roots])  # [S, F_e, H]
            self.wnb = torch.stack([w.t() for w, _ in nbs])  # [J, F_t, H]
            self.nb_slot = torch.tensor([slot for slot, _ in NEIGHBOUR_SLOTS])
            self.b1e = torch.stack([b for _, b in roots]).index_add(
                0, self.nb_slot, torch.stack([b for _, b in nbs])
            )
            # layer 2: root2 on the transaction, L2 per slot on its entity; the head
            root2 = _linear(m.root2)
            convs2 = [_linear(m._conv2(rel).lin_l) for rel, _ in RELATIONS]
            self.w2r = root2[0].t()
            self.w2 = torch.stack([w.t() for w, _ in convs2])  # [S, H, H]
            self.b2 = root2[1] + torch.stack([b for _, b in convs2]).sum(0)
            (w, self.bh1), (w2, self.bh2) = _linear(m.head[0]), _linear(m.head[2])
            self.wh1, self.wh2 = w.t(), w2.t()

    def __call__(
        self, x: Tensor, entity_x: Tensor, has: Tensor, nb_mean: Tensor, nb_count: Tensor
    ) -> Tensor:
        """Logits, as :meth:`FraudSAGE.forward_dense` (same arguments and shapes)."""
        n = x.shape[0]
        xs = (x - self.txn_mean) / self.txn_std
        es = (entity_x - self.ent_mean) / self.ent_std * has.unsqueeze(-1)  # [B, S, F_e]
        nb = (nb_mean - self.txn_mean) / self.txn_std * (nb_count > 0).unsqueeze(-1)
        h1t = torch.relu(torch.addmm(self.b1t, torch.cat((xs, es.reshape(n, -1)), 1), self.w1t))
        h1e = torch.bmm(es.transpose(0, 1), self.w1e)  # [S, B, H]
        h1e = h1e.index_add(0, self.nb_slot, torch.bmm(nb.transpose(0, 1), self.wnb))
        he = torch.relu(h1e + self.b1e.unsqueeze(1)) * has.t().unsqueeze(-1)
        h2 = torch.relu(torch.addmm(self.b2, h1t, self.w2r) + torch.bmm(he, self.w2).sum(0))
        hidden = torch.relu(torch.addmm(self.bh1, h2, self.wh1))
        return torch.addmm(self.bh2, hidden, self.wh2).squeeze(-1)


def _linear(module: nn.Module) -> tuple[Tensor, Tensor]:
    """A linear map's weight and bias, copied (a snapshot that later training leaves alone)."""
    weight, bias = module.weight, module.bias
    assert isinstance(weight, Tensor)
    assert isinstance(bias, Tensor)
    return weight.detach().clone(), bias.detach().clone()
