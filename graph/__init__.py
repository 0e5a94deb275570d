"""Graph: the entity graph store and ring detection."""
