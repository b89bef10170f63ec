"""Neural-network layer operators (MXNet's names), one module per family."""
# each import registers one family of operators
from . import activation, convolution, dropout, embedding, fully_connected, loss, norm, pad_crop, pooling, rnn, sequence, softmax, upsampling  # noqa: F401,E402
