"""Neural-network layer operators (MXNet's names), one module per family."""
# each import registers one family of operators
from . import activation, dropout, embedding, loss, norm, pad_crop, sequence, softmax  # noqa: F401,E402
