"""GNN: features, the GraphSAGE model, training, explanations."""
