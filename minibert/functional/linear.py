"""Linear layer: y = x W^T + b, with W kept in PyTorch's (out, in) layout.

Shapes: x (..., I), w (O, I), b (O,) -> y (..., O)
"""


def linear_forward(x, w, b=None):
    """y = x @ w.T + b over the last axis of x. Shapes: x (..., I), w (O, I), b (O,) -> (..., O)"""
    lead = x.shape[:-1]
    # one 2-D GEMM over every row: BLAS runs faster on (B*T, I) than on a stack of (T, I)
    y = x.reshape(-1, x.shape[-1]) @ w.T  # (N, O)
    if b is not None:
        y += b  # in place: y is a fresh array
    return y.reshape(*lead, w.shape[0]), (x, w)


def linear_backward(dy, cache):
    """Gradients of y = x @ w.T + b. Shapes: dy (..., O) -> dx (..., I), dw (O, I), db (O,)"""
    x, w = cache
    dy2 = dy.reshape(-1, dy.shape[-1])  # (N, O)
    dx = (dy2 @ w).reshape(x.shape)  # forward: y = x w^T, so dx = dy w
    dw = dy2.T @ x.reshape(-1, x.shape[-1])  # (O, I): every row of x meets every row of dy
    db = dy2.sum(0)  # (O,): the bias is added to every row
    return dx, dw, db
