"""Neural-network layer operators (MXNet's names), one module per family."""
from . import activation, dropout, loss, norm, softmax  # noqa: F401,E402  (registration side effects)
