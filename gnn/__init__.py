"""GNN: features, the GraphSAGE model, training, evaluation, explanations and fairness."""

import warnings

# PyTorch Geometric still compiles a few helpers with TorchScript when imported; the warning
# says nothing about this project's code.
warnings.filterwarnings(
    "ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning
)
