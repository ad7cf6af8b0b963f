# A correct rewrite (full marks): the sequence functions as loops over the step functions.


def rnn_forward(x, h0, Wx, Wh, b):
    xp = get_array_module(x, h0, Wx, Wh, b)
    h, hs, caches = h0, [], []
    for t in range(x.shape[1]):
        h, step = rnn_step_forward(x[:, t], h, Wx, Wh, b)
        hs.append(h)
        caches.append(step)
    return xp.stack(hs, axis=1), caches


def rnn_backward(dhs, cache):
    xp = get_array_module(dhs)
    dh = xp.zeros_like(cache[0].h_prev)
    dxs, dWx, dWh, db = [], 0, 0, 0
    for t in reversed(range(len(cache))):
        dx, dh, dWx_t, dWh_t, db_t = rnn_step_backward(dhs[:, t] + dh, cache[t])
        dxs.append(dx)
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
    return xp.stack(dxs[::-1], axis=1), dh, dWx, dWh, db
