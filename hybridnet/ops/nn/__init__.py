"""Neural-network layer operators (MXNet's names), one module per family."""
